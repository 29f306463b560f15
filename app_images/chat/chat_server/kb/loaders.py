"""Turn an uploaded file's bytes into text; every failure is a DocumentError naming the file."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import PurePosixPath

from chat_server.errors import ServiceError

SUPPORTED_EXTENSIONS = (".txt", ".md", ".pdf", ".docx", ".html", ".htm", ".csv", ".json")
_SAFE_NAME = re.compile(r"^[^\x00-\x1f/\\]+$")


class DocumentError(ServiceError, ValueError):
    """Bad input: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


def validate_file_name(name: str | None) -> str:
    """Accept a plain file name only: no directories, no traversal, a supported extension."""
    if not name or not name.strip():
        raise DocumentError(400, "file name is empty")
    if not _SAFE_NAME.fullmatch(name) or name in (".", "..") or name.startswith("."):
        raise DocumentError(
            400,
            f"file name {name!r} is not allowed: no path separators, control characters "
            "or leading dots",
        )
    if len(name.encode("utf-8")) > 255:
        raise DocumentError(400, f"file name {name[:40]!r}... is longer than 255 bytes")
    if PurePosixPath(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise DocumentError(
            415,
            f"file {name!r} has an unsupported type; supported: " + ", ".join(SUPPORTED_EXTENSIONS),
        )
    return name


def _decode_utf8(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            400, f"file {name!r} is not valid UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from exc


def _load_pdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n\n".join((page.extract_text() or "") for page in reader.pages)


def _load_docx(data: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _load_html(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text("\n", strip=True)


def _load_csv(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    if not body:
        return ", ".join(header)
    # One paragraph per row, "column: value" so that each row embeds with its meaning.
    return "\n\n".join(
        "\n".join(f"{h}: {v}" for h, v in zip(header, row, strict=False)) for row in body
    )


def _load_json(name: str, text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(400, f"file {name!r} is not valid JSON: {exc}") from exc
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1)


def load_text(name: str, data: bytes) -> str:
    """Extract the text of one document; raise DocumentError on empty or unreadable input."""
    if not data:
        raise DocumentError(400, f"file {name!r} is empty")
    suffix = PurePosixPath(name).suffix.lower()
    try:
        if suffix == ".pdf":
            text = _load_pdf(data)
        elif suffix == ".docx":
            text = _load_docx(data)
        else:
            raw = _decode_utf8(name, data)
            if suffix in (".html", ".htm"):
                text = _load_html(raw)
            elif suffix == ".csv":
                text = _load_csv(raw)
            elif suffix == ".json":
                text = _load_json(name, raw)
            else:
                text = raw
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser libraries raise many types on bad files
        raise DocumentError(400, f"file {name!r} could not be read as {suffix}: {exc}") from exc
    if not text.strip():
        raise DocumentError(400, f"file {name!r} contains no text")
    return text
