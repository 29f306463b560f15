"""Turn an uploaded file (bytes or a path) into text; every failure is a DocumentError naming it."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from chat_server.settings import Settings

from chat_server.errors import ServiceError

SUPPORTED_EXTENSIONS = (".txt", ".md", ".pdf", ".docx", ".html", ".htm", ".csv", ".json")
_SAFE_NAME = re.compile(r"^[^\x00-\x1f/\\]+$")


class DocumentError(ServiceError, ValueError):
    """Bad input: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work one document may cause; defaults and settings in the README."""

    max_unzipped_bytes: int = 64 * 1024 * 1024  # sum of a docx's declared member sizes
    max_zip_members: int = 2_000
    max_elements: int = 1_000_000  # XML elements of a docx, tags of HTML, values of JSON
    max_pdf_pages: int = 2_000
    max_text_chars: int = 20_000_000
    deadline_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(
            settings.parse_max_unzipped_bytes,
            settings.parse_max_zip_members,
            settings.parse_max_elements,
            settings.parse_max_pdf_pages,
            settings.parse_max_text_chars,
            settings.parse_deadline_s,
        )


class _Budget:
    """The limits applied while one file is parsed, with a cooperative deadline."""

    def __init__(self, name: str, limits: ParseLimits) -> None:
        self.name = name
        self.limits = limits
        self.ends = time.monotonic() + limits.deadline_s

    def too_big(self, what: str, limit: int, setting: str) -> DocumentError:
        return DocumentError(
            413, f"file {self.name!r} has {what}, over the limit of {limit} ({setting})"
        )

    def check_time(self) -> None:
        if time.monotonic() > self.ends:
            raise DocumentError(
                413,
                f"file {self.name!r} took longer than {self.limits.deadline_s:g}s to parse "
                "(PARSE_DEADLINE_S)",
            )

    def check_elements(self, count: int) -> None:
        if count > self.limits.max_elements:
            raise self.too_big(
                f"more than {self.limits.max_elements} elements",
                self.limits.max_elements,
                "PARSE_MAX_ELEMENTS",
            )


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


def _source(data: bytes | Path) -> IO[bytes] | Path:
    """What a parser library opens: a spool or stored file by its path, else the bytes."""
    return data if isinstance(data, Path) else io.BytesIO(data)


def _load_pdf(data: bytes | Path, budget: _Budget) -> str:
    from pypdf import PdfReader

    reader = PdfReader(_source(data))
    pages = len(reader.pages)
    if pages > budget.limits.max_pdf_pages:
        raise budget.too_big(f"{pages} pages", budget.limits.max_pdf_pages, "PARSE_MAX_PDF_PAGES")
    parts: list[str] = []
    chars = 0
    for page in reader.pages:
        budget.check_time()
        text = page.extract_text() or ""
        chars += len(text)
        if chars > budget.limits.max_text_chars:
            raise budget.too_big(
                f"more than {budget.limits.max_text_chars} characters of text",
                budget.limits.max_text_chars,
                "PARSE_MAX_TEXT_CHARS",
            )
        parts.append(text)
    return "\n\n".join(parts)


def _check_zip(data: bytes | Path, budget: _Budget) -> None:
    """A docx is a zip: refuse bombs by the declared sizes and the XML element count first."""
    from lxml import etree

    with zipfile.ZipFile(_source(data)) as archive:
        members = archive.infolist()
        if len(members) > budget.limits.max_zip_members:
            raise budget.too_big(
                f"{len(members)} zip members",
                budget.limits.max_zip_members,
                "PARSE_MAX_ZIP_MEMBERS",
            )
        # zipfile stops each member at its declared size (and fails its CRC if that is a lie).
        declared = sum(m.file_size for m in members)
        if declared > budget.limits.max_unzipped_bytes:
            raise budget.too_big(
                f"{declared} bytes uncompressed",
                budget.limits.max_unzipped_bytes,
                "PARSE_MAX_UNZIPPED_BYTES",
            )
        count = 0
        for member in members:
            if not member.filename.endswith((".xml", ".rels")):
                continue
            with archive.open(member) as stream:
                events = etree.iterparse(
                    stream, events=("end",), resolve_entities=False, no_network=True
                )
                for _, element in events:
                    count += 1
                    element.clear()  # streamed: memory stays flat however many elements
                    parent = element.getparent()
                    while parent is not None and element.getprevious() is not None:
                        del parent[0]  # the cleared siblings before it, too
                    if count % 10_000 == 0:
                        budget.check_elements(count)
                        budget.check_time()
        budget.check_elements(count)


def _load_docx(data: bytes | Path, budget: _Budget) -> str:
    import docx

    _check_zip(data, budget)
    source = _source(data)
    document = docx.Document(str(source) if isinstance(source, Path) else source)
    budget.check_time()
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


def _estimate_elements(text: str, budget: _Budget, marks: str) -> None:
    """An upper bound of the nodes a parser would build, counted before it builds them."""
    budget.check_elements(sum(text.count(m) for m in marks))


def _load_csv(text: str, budget: _Budget) -> str:
    rows = []
    for row in csv.reader(io.StringIO(text)):
        rows.append(row)
        if len(rows) % 10_000 == 0:
            budget.check_time()
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


def load_text(name: str, data: bytes | Path, limits: ParseLimits | None = None) -> str:
    """Extract the text of one document; raise DocumentError on empty or unreadable input.

    `data` is the document's bytes or the path of a file holding them (a spool file).
    """
    if (data.stat().st_size if isinstance(data, Path) else len(data)) == 0:
        raise DocumentError(400, f"file {name!r} is empty")
    suffix = PurePosixPath(name).suffix.lower()
    budget = _Budget(name, limits or ParseLimits())
    try:
        if suffix == ".pdf":
            text = _load_pdf(data, budget)
        elif suffix == ".docx":
            text = _load_docx(data, budget)
        else:
            raw = _decode_utf8(name, data.read_bytes() if isinstance(data, Path) else data)
            if suffix in (".html", ".htm"):
                _estimate_elements(raw, budget, "<")
                text = _load_html(raw)
            elif suffix == ".csv":
                text = _load_csv(raw, budget)
            elif suffix == ".json":
                _estimate_elements(raw, budget, ",[{")
                text = _load_json(name, raw)
            else:
                text = raw
        budget.check_time()
    except (DocumentError, MemoryError):
        raise  # a MemoryError is the parse worker's to report (PARSE_MAX_MEMORY_BYTES)
    except zipfile.BadZipFile as exc:
        raise DocumentError(400, f"file {name!r} is not a valid {suffix} (zip): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - parser libraries raise many types on bad files
        raise DocumentError(400, f"file {name!r} could not be read as {suffix}: {exc}") from exc
    if len(text) > budget.limits.max_text_chars:
        raise budget.too_big(
            f"{len(text)} characters of text",
            budget.limits.max_text_chars,
            "PARSE_MAX_TEXT_CHARS",
        )
    if not text.strip():
        raise DocumentError(400, f"file {name!r} contains no text")
    return text
