"""Turn an uploaded file (bytes or a path) into text; every failure is a DocumentError naming it."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from PIL.Image import Image as PILImage

    from chat_server.settings import Settings

from chat_server.errors import ServiceError

# Chatchat 0.2.10's LOADER_DICT less .doc/.ppt/.odt/.xlsd/.enex (README "File types").
OCR_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_EXTENSIONS = (
    ".txt", ".md", ".pdf", ".docx", ".html", ".htm", ".csv", ".json", ".jsonl", ".tsv",
    ".xlsx", ".xls", ".pptx", ".epub", ".xml", ".rst", ".srt", ".eml", ".msg", ".rtf",
    ".ipynb", ".py", ".toml", ".mhtml", *OCR_IMAGE_EXTENSIONS,
)  # fmt: skip
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
    max_ocr_pages: int = 50  # images OCR'd in one file: text-less PDF pages, pptx pictures
    max_image_pixels: int = 50_000_000  # of one image before it is decoded for OCR

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(
            settings.parse_max_unzipped_bytes,
            settings.parse_max_zip_members,
            settings.parse_max_elements,
            settings.parse_max_pdf_pages,
            settings.parse_max_text_chars,
            settings.parse_deadline_s,
            settings.parse_max_ocr_pages,
            settings.parse_max_image_pixels,
        )


class _Budget:
    """The limits applied while one file is parsed, with a cooperative deadline."""

    def __init__(self, name: str, limits: ParseLimits) -> None:
        self.name = name
        self.limits = limits
        self.ends = time.monotonic() + limits.deadline_s
        self.ocr_pages = 0

    def too_big(self, what: str, limit: int, setting: str) -> DocumentError:
        return DocumentError(
            413, f"file {self.name!r} has {what}, over the limit of {limit} ({setting})"
        )

    def check_time(self) -> None:
        if time.monotonic() > self.ends:
            ocr = (
                f" after OCR of {self.ocr_pages} page(s) or image(s), each taking seconds; "
                "raise PARSE_DEADLINE_S for long scans"
                if self.ocr_pages
                else ""
            )
            raise DocumentError(
                413,
                f"file {self.name!r} took longer than {self.limits.deadline_s:g}s to parse "
                f"(PARSE_DEADLINE_S){ocr}",
            )

    def check_ocr_pages(self, count: int, what: str) -> None:
        if count > self.limits.max_ocr_pages:
            raise self.too_big(
                f"{count} {what} to OCR", self.limits.max_ocr_pages, "PARSE_MAX_OCR_PAGES"
            )

    def check_chars(self, chars: int) -> None:
        if chars > self.limits.max_text_chars:
            raise self.too_big(
                f"more than {self.limits.max_text_chars} characters of text",
                self.limits.max_text_chars,
                "PARSE_MAX_TEXT_CHARS",
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


def _stream(data: bytes | Path) -> IO[bytes]:
    """A binary stream of the document, for libraries that judge a path by its extension
    (openpyxl) or take only strings or streams (python-pptx): spool files have none."""
    return data.open("rb") if isinstance(data, Path) else io.BytesIO(data)


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
        budget.check_chars(chars)
        parts.append(text)
    # Pages without a text layer (scans) are rendered and OCR'd; counted before any is.
    blank = [i for i, text in enumerate(parts) if not text.strip()]
    if blank:
        budget.check_ocr_pages(len(blank), "pages without a text layer")
        for i, text in _ocr_pdf_pages(data, blank, budget):
            chars += len(text)
            budget.check_chars(chars)
            parts[i] = text
    return "\n\n".join(part for part in parts if part.strip())


def _ocr_pdf_pages(
    data: bytes | Path, pages: list[int], budget: _Budget
) -> Iterator[tuple[int, str]]:
    """Render each page with PDFium (longest side <= ocr.MAX_SIDE_PX, <= 200 dpi) and OCR it."""
    import pypdfium2

    from chat_server.kb import ocr

    document = pypdfium2.PdfDocument(data)
    try:
        for i in pages:
            budget.check_time()
            page = document[i]
            try:
                width, height = page.get_size()  # PDF points, 1/72 inch
                scale = min(200 / 72, ocr.MAX_SIDE_PX / max(width, height, 1.0))
                image = page.render(scale=scale).to_pil()
            finally:
                page.close()
            budget.ocr_pages += 1
            yield i, ocr.image_text(image)
    finally:
        document.close()


def _load_image(name: str, data: bytes | Path, budget: _Budget) -> str:
    from PIL import Image

    try:
        image = Image.open(_source(data))  # reads the header only: the size is known
    except Image.DecompressionBombError as exc:
        raise _image_too_big(budget, str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        raise DocumentError(
            400, f"file {name!r} is not an image Pillow can read (PNG, JPEG, BMP)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DocumentError(400, f"file {name!r} is not a readable image: {exc}") from exc
    return _ocr_image(image, budget)


def _image_too_big(budget: _Budget, what: str) -> DocumentError:
    return budget.too_big(what, budget.limits.max_image_pixels, "PARSE_MAX_IMAGE_PIXELS")


def _ocr_image(image: PILImage, budget: _Budget) -> str:
    from chat_server.kb import ocr

    width, height = image.size
    if width * height > budget.limits.max_image_pixels:
        raise _image_too_big(budget, f"an image of {width}x{height} pixels")
    budget.ocr_pages += 1
    budget.check_ocr_pages(budget.ocr_pages, "images")
    budget.check_time()
    image.thumbnail((ocr.MAX_SIDE_PX, ocr.MAX_SIDE_PX))  # in place; keeps the aspect ratio
    return ocr.image_text(image)


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


def _rows_text(rows: Iterable[Sequence[object]], budget: _Budget) -> str:
    """A table as text: one paragraph per row of `header: value` lines (empty cells left out).

    The first row with a value is the header; a table of one row is that row, tab-joined.
    """
    header: list[str] | None = None
    paragraphs: list[str] = []
    cells = 0
    for row in rows:
        values = ["" if v is None else str(v).strip() for v in row]
        cells += len(values)
        if cells > budget.limits.max_elements:
            budget.check_elements(cells)
        if len(paragraphs) % 1_000 == 0:
            budget.check_time()
        if not any(values):
            continue
        if header is None:
            header = values
            continue
        names = header + [f"column {i + 1}" for i in range(len(header), len(values))]
        pairs = zip(names, values, strict=False)
        paragraphs.append("\n".join(f"{h}: {v}" if h else v for h, v in pairs if v))
    if header is None:
        return ""
    return "\n\n".join(paragraphs) if paragraphs else "\t".join(header)


def _load_xlsx(data: bytes | Path, budget: _Budget) -> str:
    import openpyxl

    _check_zip(data, budget)
    stream = _stream(data)
    book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    try:
        sheets = [
            f"# {sheet.title}\n\n{_rows_text(sheet.iter_rows(values_only=True), budget)}"
            for sheet in book.worksheets
        ]
    finally:
        book.close()
        stream.close()
    return "\n\n".join(sheets)


def _load_xls(data: bytes | Path, budget: _Budget) -> str:
    import xlrd

    raw = data.read_bytes() if isinstance(data, Path) else data
    book = xlrd.open_workbook(file_contents=raw, on_demand=True)
    try:
        sheets = []
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            budget.check_elements(sheet.nrows * sheet.ncols)
            rows = (sheet.row_values(r) for r in range(sheet.nrows))
            sheets.append(f"# {sheet.name}\n\n{_rows_text(rows, budget)}")
            book.unload_sheet(index)
    finally:
        book.release_resources()
    return "\n\n".join(sheets)


def _load_pptx(data: bytes | Path, budget: _Budget) -> str:
    """Slide text frames, tables (`|`-joined rows), groups, pictures (OCR) and notes, in order."""
    import pptx
    from PIL import Image
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    _check_zip(data, budget)
    with _stream(data) as stream:
        deck = pptx.Presentation(stream)
    parts: list[str] = []

    def walk(shapes: Iterable[Any]) -> None:
        for shape in shapes:
            if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
                walk(shape.shapes)
            elif getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    parts.append(" | ".join(cell.text for cell in row.cells))
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                parts.append(shape.text_frame.text)
            elif shape.shape_type == MSO_SHAPE_TYPE.PICTURE:
                try:
                    image = Image.open(io.BytesIO(shape.image.blob))
                except (OSError, SyntaxError, ValueError):
                    continue  # EMF, WMF, SVG: a format Pillow does not read has no text here
                parts.append(_ocr_image(image, budget))

    for number, slide in enumerate(deck.slides, start=1):
        budget.check_time()
        parts.append(f"# Slide {number}")
        walk(sorted(slide.shapes, key=lambda s: (s.top or 0, s.left or 0)))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(part for part in parts if part.strip())


def _load_epub(data: bytes | Path, budget: _Budget) -> str:
    import ebooklib
    from ebooklib import epub

    _check_zip(data, budget)
    source = _source(data)
    book = epub.read_epub(str(source) if isinstance(source, Path) else source, {"ignore_ncx": True})
    parts = []
    by_id = {item.id: item for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)}
    for item_id, _linear in book.spine:  # reading order; documents off the spine after it
        item = by_id.pop(item_id, None)
        if item is not None:
            budget.check_time()
            parts.append(_load_html(item.get_content().decode("utf-8", "replace")))
    parts.extend(_load_html(i.get_content().decode("utf-8", "replace")) for i in by_id.values())
    return "\n\n".join(parts)


def _load_msg(name: str, data: bytes | Path) -> str:
    import extract_msg

    try:  # olefile takes short bytes for a path: a stream, always
        message: Any = extract_msg.openMsg(
            _source(data)
        )  # a Message for a mail, else another MSGFile
    except Exception as exc:  # noqa: BLE001 - extract_msg raises its own and olefile's types
        raise DocumentError(400, f"file {name!r} is not an Outlook .msg file: {exc}") from exc
    try:
        headers = [
            f"{label}: {value}"
            for label, value in (
                ("Subject", message.subject),
                ("From", message.sender),
                ("To", message.to),
                ("Date", message.date),
            )
            if value
        ]
        body = message.body
        if not (body and body.strip()) and message.htmlBody:
            body = _load_html(message.htmlBody.decode("utf-8", "replace"))
    finally:
        message.close()
    return "\n".join(headers) + "\n\n" + (body or "")


def _load_eml(name: str, raw: bytes) -> str:
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    labels = ("Subject", "From", "To", "Cc", "Date")
    headers = [f"{label}: {message[label]}" for label in labels if message[label]]
    if not headers:
        raise DocumentError(
            400, f"file {name!r} is not an e-mail message: it has no Subject, From, To or Date"
        )
    part = message.get_body(preferencelist=("plain", "html"))
    body = ""
    if isinstance(part, EmailMessage):
        content = part.get_content()
        body = content if isinstance(content, str) else ""
        if part.get_content_subtype() == "html":
            body = _load_html(body)
    return "\n".join(headers) + "\n\n" + body


def _load_mhtml(name: str, raw: bytes) -> str:
    """A saved web page (MIME multipart): the text of its first HTML part."""
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        if part.get_content_type() == "text/html" and isinstance(part, EmailMessage):
            content = part.get_content()
            if isinstance(content, str):
                return _load_html(content)
    raise DocumentError(400, f"file {name!r} is not an MHTML page: it has no text/html part")


def _load_toml(name: str, text: str) -> str:
    import tomllib

    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(400, f"file {name!r} is not valid TOML: {exc}") from exc
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _load_rtf(name: str, raw: bytes) -> str:
    from striprtf.striprtf import rtf_to_text

    text = raw.decode("latin-1")  # RTF is 7-bit; \'xx and \u escapes carry the rest
    if not text.lstrip().startswith("{\\rtf"):
        raise DocumentError(400, f"file {name!r} is not an RTF document (no {{\\rtf header)")
    return str(rtf_to_text(text, errors="replace"))


def _load_ipynb(name: str, text: str) -> str:
    """The notebook's markdown and code cells in order; outputs are left out."""
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(400, f"file {name!r} is not valid JSON: {exc}") from exc
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise DocumentError(400, f"file {name!r} is not a Jupyter notebook: no list of cells")
    parts = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("markdown", "code"):
            continue
        source = cell.get("source", "")
        parts.append("".join(source) if isinstance(source, list) else str(source))
    return "\n\n".join(parts)


def _record_text(value: object) -> str:
    """One JSON value as text: an object as `key: value` lines (nested values as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(
            f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in value.items()
        )
    return json.dumps(value, ensure_ascii=False)


def _load_jsonl(name: str, text: str, budget: _Budget) -> str:
    """One paragraph per line (one JSON value a line, as 0.2's JSONLinesLoader reads them)."""
    paragraphs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocumentError(
                400, f"file {name!r} line {number} is not valid JSON: {exc}"
            ) from exc
        paragraphs.append(_record_text(value))
        if number % 10_000 == 0:
            budget.check_time()
    return "\n\n".join(paragraphs)


def _load_xml(raw: bytes, budget: _Budget) -> str:
    """The text of every element, one per line; entities are not expanded, no DTD is fetched."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(raw, parser)
    lines = [t.strip() for t in root.itertext() if t.strip()]
    return "\n".join(lines)


def _load_srt(name: str, text: str) -> str:
    """Subtitle text, one cue a line: cue numbers and `-->` timings are dropped."""
    import srt

    try:
        cues = list(srt.parse(text))
    except srt.SRTParseError as exc:
        raise DocumentError(400, f"file {name!r} is not a valid SubRip (.srt) file: {exc}") from exc
    return "\n".join(" ".join(cue.content.split()) for cue in cues)


def _load_html(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text("\n", strip=True)


def _estimate_elements(text: str, budget: _Budget, marks: str) -> None:
    """An upper bound of the nodes a parser would build, counted before it builds them."""
    budget.check_elements(sum(text.count(m) for m in marks))


def _load_csv(text: str, budget: _Budget, delimiter: str = ",") -> str:
    rows = []
    for row in csv.reader(io.StringIO(text), delimiter=delimiter):
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


def _load_utf8_text(name: str, suffix: str, raw: str, budget: _Budget) -> str:
    if suffix in (".html", ".htm"):
        _estimate_elements(raw, budget, "<")
        return _load_html(raw)
    if suffix in (".csv", ".tsv"):
        return _load_csv(raw, budget, "\t" if suffix == ".tsv" else ",")
    if suffix == ".json":
        _estimate_elements(raw, budget, ",[{")
        return _load_json(name, raw)
    if suffix == ".jsonl":
        _estimate_elements(raw, budget, ",[{")
        return _load_jsonl(name, raw, budget)
    if suffix == ".ipynb":
        _estimate_elements(raw, budget, ",[{")
        return _load_ipynb(name, raw)
    if suffix == ".srt":
        return _load_srt(name, raw)
    if suffix == ".toml":
        return _load_toml(name, raw)
    return raw  # .txt, .md, .rst, .py: kept as written


_BINARY_LOADERS: dict[str, Callable[[str, bytes | Path, _Budget], str]] = {
    ".pdf": lambda name, data, budget: _load_pdf(data, budget),
    ".docx": lambda name, data, budget: _load_docx(data, budget),
    ".xlsx": lambda name, data, budget: _load_xlsx(data, budget),
    ".xls": lambda name, data, budget: _load_xls(data, budget),
    ".pptx": lambda name, data, budget: _load_pptx(data, budget),
    ".epub": lambda name, data, budget: _load_epub(data, budget),
    ".msg": lambda name, data, budget: _load_msg(name, data),
    **dict.fromkeys(OCR_IMAGE_EXTENSIONS, _load_image),
}


def load_text(name: str, data: bytes | Path, limits: ParseLimits | None = None) -> str:
    """Extract the text of one document; raise DocumentError on empty or unreadable input.

    `data` is the document's bytes or the path of a file holding them (a spool file).
    """
    if (data.stat().st_size if isinstance(data, Path) else len(data)) == 0:
        raise DocumentError(400, f"file {name!r} is empty")
    suffix = PurePosixPath(name).suffix.lower()
    budget = _Budget(name, limits or ParseLimits())
    try:
        if suffix in _BINARY_LOADERS:
            text = _BINARY_LOADERS[suffix](name, data, budget)
        else:
            raw_bytes = data.read_bytes() if isinstance(data, Path) else data
            if suffix == ".eml":
                text = _load_eml(name, raw_bytes)
            elif suffix == ".mhtml":
                _estimate_elements(raw_bytes.decode("latin-1"), budget, "<")
                text = _load_mhtml(name, raw_bytes)
            elif suffix == ".rtf":
                text = _load_rtf(name, raw_bytes)
            elif suffix == ".xml":
                _estimate_elements(raw_bytes.decode("latin-1"), budget, "<")
                text = _load_xml(raw_bytes, budget)
            else:
                text = _load_utf8_text(name, suffix, _decode_utf8(name, raw_bytes), budget)
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
