"""The file types Chatchat 0.2.10 loads, each built here by the writing side of a real library.

openpyxl writes the xlsx, xlwt the xls, python-pptx the pptx, ebooklib the epub, the stdlib
email package the eml, srt the srt, Pillow (DejaVu Sans) the images, Pillow and reportlab the
PDFs. RTF, XML, TSV, JSONL and notebooks are text formats written as such. No library writes
Outlook .msg files, so .msg is tested for its refusal of a broken file only.
"""

from __future__ import annotations

import datetime
import io
import json
from email.message import EmailMessage
from pathlib import Path

import ebooklib.epub
import openpyxl
import pptx
import pytest
import srt
import xlwt
from PIL import Image, ImageDraw, ImageFont
from pptx.util import Inches
from reportlab.pdfgen import canvas

from chat_server.kb.loaders import (
    SUPPORTED_EXTENSIONS,
    DocumentError,
    ParseLimits,
    _Budget,
    load_text,
)
from chat_server.kb.parse_pool import ParsePool
from tests.chatchat_client import ChatchatClient
from tests.conftest import AUTH, new_kb_name

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ROWS = [("city", "river", "population"), ("Vienna", "Danube", 2000000), ("Cairo", "Nile", 10)]


def text_image(lines: list[str], size: tuple[int, int] = (1200, 400)) -> Image.Image:
    """Black DejaVu Sans text, 48 px, on white: what a scan of a printed page looks like."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 48)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 90 * i), line, fill="black", font=font)
    return image


def png_bytes(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    text_image(lines).save(buffer, "PNG")
    return buffer.getvalue()


def image_only_pdf(pages: list[list[str]]) -> bytes:
    """A PDF whose pages are pictures only, no text layer (Pillow's PDF writer)."""
    images = [text_image(lines, (1240, 1754)) for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=150, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Rivers"
    for row in ROWS:
        sheet.append(row)
    book.create_sheet("Empty")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def xls_bytes() -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Rivers")
    for r, row in enumerate(ROWS):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def pptx_bytes(picture: bytes | None = None) -> bytes:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Launch plan"
    slide.placeholders[1].text = "Rocket engines are tested in March"
    slide.notes_slide.notes_text_frame.text = "Speaker note about fuel"
    table = deck.slides.add_slide(deck.slide_layouts[6]).shapes.add_table(
        2, 2, Inches(1), Inches(1), Inches(4), Inches(1)
    )
    for r, row in enumerate([("stage", "engine"), ("first", "Merlin")]):
        for c, value in enumerate(row):
            table.table.cell(r, c).text = value
    if picture is not None:
        deck.slides.add_slide(deck.slide_layouts[6]).shapes.add_picture(
            io.BytesIO(picture), Inches(1), Inches(1)
        )
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def epub_bytes(tmp_path: Path) -> bytes:
    book = ebooklib.epub.EpubBook()
    book.set_identifier("id-1")
    book.set_title("Rivers")
    book.set_language("en")
    chapters = []
    for n, body in enumerate(["The Danube flows through Vienna.", "长江是中国最长的河流。"], 1):
        chapter = ebooklib.epub.EpubHtml(title=f"c{n}", file_name=f"c{n}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>Chapter {n}</h1><p>{body}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(ebooklib.epub.EpubNcx())
    book.add_item(ebooklib.epub.EpubNav())
    book.spine = ["nav", *chapters]
    path = tmp_path / "book.epub"
    ebooklib.epub.write_epub(str(path), book)
    return path.read_bytes()


def eml_bytes(html: bool = False) -> bytes:
    message = EmailMessage()
    message["Subject"] = "Quarterly numbers"
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "team@example.com"
    message.set_content("Revenue grew by nine percent.")
    if html:
        message.add_alternative("<p>Revenue grew by <b>nine</b> percent.</p>", subtype="html")
    message.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    return message.as_bytes()


def srt_bytes() -> bytes:
    cues = [
        srt.Subtitle(
            1, datetime.timedelta(seconds=1), datetime.timedelta(seconds=3), "Hello\nworld"
        ),
        srt.Subtitle(2, datetime.timedelta(seconds=4), datetime.timedelta(seconds=6), "你好，世界"),
    ]
    return srt.compose(cues).encode()


def notebook_bytes() -> bytes:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Analysis\n", "Rivers by length"]},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": "print('Nile')",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["OUTPUT-LEFT-OUT"]}],
        },
    ]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    return json.dumps(notebook).encode()


JSONL_SAMPLE = (
    # The shape of Chatchat 0.2's sample corpus (test_files/langchain-ChatGLM_closed.jsonl).
    '{"title": "加油~以及一些建议", "file": "2023-03-31.0002", "url": "https://github.com/x/1",'
    ' "detail": "加油，我认为你的方向是对的。", "id": 0}\n'
    '{"title": "当前的运行环境是什么", "file": "2023-04-01.0003", "url": "https://github.com/x/2",'
    ' "detail": "windows还是Linux？", "id": 1}\n'
    "\n"
)


def test_jsonl_rows_become_key_value_paragraphs():
    text = load_text("issues.jsonl", JSONL_SAMPLE.encode())
    first, second = text.split("\n\n")
    assert first.splitlines() == [
        "title: 加油~以及一些建议",
        "file: 2023-03-31.0002",
        "url: https://github.com/x/1",
        "detail: 加油，我认为你的方向是对的。",
        "id: 0",
    ]
    assert "detail: windows还是Linux？" in second
    assert "{" not in text and "\\u" not in text


def test_spreadsheets_and_tsv_are_header_value_rows():
    expected = "city: Vienna\nriver: Danube\npopulation: 2000000"
    xlsx = load_text("cities.xlsx", xlsx_bytes())
    assert xlsx.startswith("# Rivers\n\n" + expected + "\n\ncity: Cairo")
    assert "# Empty" in xlsx
    xls = load_text("cities.xls", xls_bytes())
    assert "# Rivers" in xls and "city: Vienna\nriver: Danube" in xls
    assert "population: 2000000" in xls.replace(".0", "")  # xlrd reads numbers as floats
    tsv = "\n".join("\t".join(str(v) for v in row) for row in ROWS).encode()
    assert load_text("cities.tsv", tsv).startswith(expected)


def test_pptx_keeps_text_tables_and_notes_in_slide_order():
    text = load_text("plan.pptx", pptx_bytes())
    assert text.splitlines() == [
        "# Slide 1",
        "Launch plan",
        "Rocket engines are tested in March",
        "Speaker note about fuel",
        "# Slide 2",
        "stage | engine",
        "first | Merlin",
    ]


def test_epub_chapters_in_spine_order(tmp_path):
    text = load_text("rivers.epub", epub_bytes(tmp_path))
    assert text.index("The Danube flows through Vienna.") < text.index("长江是中国最长的河流。")
    assert "<p>" not in text


@pytest.mark.parametrize("html", [False, True])
def test_eml_headers_and_body_without_attachments(html):
    text = load_text("mail.eml", eml_bytes(html))
    assert text.startswith("Subject: Quarterly numbers\nFrom: Ann <ann@example.com>\n")
    assert "Revenue grew by nine percent." in text and "<b>" not in text


def test_text_formats():
    assert load_text("subs.srt", srt_bytes()) == "Hello world\n你好，世界"
    rtf = rb"{\rtf1\ansi\deff0 {\fonttbl {\f0 Times;}}\f0 Caf\'e9 \b bold\b0  \u20013?\u25991?\par}"
    assert load_text("note.rtf", rtf).strip() == "Café bold 中文"
    xml = (
        b'<?xml version="1.0"?><rivers><river name="x"><n>Nile</n><len>6650</len></river></rivers>'
    )
    assert load_text("rivers.xml", xml) == "Nile\n6650"
    notebook = load_text("analysis.ipynb", notebook_bytes())
    assert notebook == "# Analysis\nRivers by length\n\nprint('Nile')"
    rst = "Title\n=====\n\nSome *text*.\n"
    assert load_text("doc.rst", rst.encode()) == rst
    code = "def river():\n    return 'Nile'\n"
    assert load_text("rivers.py", code.encode()) == code
    toml = load_text("rivers.toml", b'[river]\nname = "Nile"\nlength_km = 6650\n')
    assert json.loads(toml) == {"river": {"name": "Nile", "length_km": 6650}}


def test_mhtml_is_the_text_of_its_html_part():
    page = EmailMessage()
    page["Subject"] = "Saved page"
    page["Snapshot-Content-Location"] = "https://example.com/rivers"
    page.set_content(
        "<html><body><h1>Rivers</h1><script>x()</script><p>Nile</p></body></html>", subtype="html"
    )
    page.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<img1>")
    assert load_text("page.mhtml", page.as_bytes()) == "Rivers\nNile"


def test_xml_entities_are_not_expanded():
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<r>before &x; after</r>"
    )
    assert "root:" not in load_text("evil.xml", evil)


def test_png_is_ocrd():
    text = load_text("scan.png", png_bytes(["Quarterly revenue grew", "Invoice 4711"]))
    assert "Quarterly revenue grew" in text and "4711" in text


def test_pdf_pages_without_a_text_layer_are_ocrd_and_text_pages_are_not():
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 720, "Typed page about volcanoes")
    page.save()
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(buffer.getvalue())))
    writer.append(PdfReader(io.BytesIO(image_only_pdf([["Scanned page about glaciers"]]))))
    out = io.BytesIO()
    writer.write(out)
    text = load_text("mixed.pdf", out.getvalue())
    first, second = text.split("\n\n")
    assert first.strip() == "Typed page about volcanoes"
    assert "Scanned page about glaciers" in second


def test_pptx_pictures_are_ocrd():
    text = load_text("deck.pptx", pptx_bytes(png_bytes(["Picture text Saturn"])))
    assert text.splitlines()[-1] == "Picture text Saturn"


def test_ocr_bounds_name_their_setting():
    with pytest.raises(
        DocumentError, match="3 pages without a text layer.*PARSE_MAX_OCR_PAGES"
    ) as e:
        load_text("scan.pdf", image_only_pdf([["a"], ["b"], ["c"]]), ParseLimits(max_ocr_pages=2))
    assert e.value.status == 413 and "'scan.pdf'" in e.value.message
    with pytest.raises(DocumentError, match="1200x400 pixels.*PARSE_MAX_IMAGE_PIXELS") as e:
        load_text("big.png", png_bytes(["x"]), ParseLimits(max_image_pixels=100_000))
    assert e.value.status == 413 and "'big.png'" in e.value.message
    budget = _Budget("slow.pdf", ParseLimits(deadline_s=0.0))  # what a scan past it sees
    budget.ocr_pages = 1
    with pytest.raises(DocumentError, match=r"PARSE_DEADLINE_S\) after OCR of 1 page") as e:
        budget.check_time()
    assert e.value.status == 413 and "raise PARSE_DEADLINE_S for long scans" in e.value.message


def test_table_cell_flood_is_refused():
    with pytest.raises(DocumentError, match="PARSE_MAX_ELEMENTS"):
        load_text("cities.xls", xls_bytes(), ParseLimits(max_elements=5))
    with pytest.raises(DocumentError, match="PARSE_MAX_ELEMENTS"):
        load_text("cities.xlsx", xlsx_bytes(), ParseLimits(max_elements=5))


MALFORMED = {
    ".jsonl": b'{"a": 1}\n{broken\n',
    ".xlsx": b"PK\x03\x04 not really a zip",
    ".xls": b"\xd0\xcf\x11\xe0 not an OLE file",
    ".pptx": b"plain text, no zip",
    ".epub": b"PK\x05\x06" + b"\x00" * 18,  # an empty zip: no container.xml
    ".tsv": b"\xff\xfe\x00bad utf-8",
    ".xml": b"<open><unclosed></open>",
    ".rst": b"\xff\xfe\xfa",
    ".srt": b"1\nnot a timing line\ntext\n",
    ".eml": b"\x00\x01\x02 binary, no headers",
    ".msg": b"\xd0\xcf\x11\xe0 not a compound file",
    ".rtf": b"plain text pretending to be rtf",
    ".ipynb": b'{"no": "cells"}',
    ".py": b"\xff\xfe not utf-8",
    ".toml": b"[unclosed\nkey = ",
    ".mhtml": b"Subject: x\n\nplain text, no html part",
    ".png": b"\x89PNG\r\n\x1a\n truncated",
    ".jpg": b"\xff\xd8\xff not a jpeg",
    ".jpeg": b"GIF89a nope",
    ".bmp": b"BM broken",
}


@pytest.mark.parametrize("suffix", sorted(MALFORMED))
def test_malformed_file_is_a_400_naming_it(suffix):
    name = f"broken{suffix}"
    with pytest.raises(DocumentError) as err:
        load_text(name, MALFORMED[suffix])
    assert err.value.status == 400 and repr(name) in err.value.message, err.value.message


def test_every_new_type_is_accepted_and_tested():
    new = set(SUPPORTED_EXTENSIONS) - {".txt", ".md", ".pdf", ".docx", ".html", ".htm", ".csv"}
    assert new - {".json"} == set(MALFORMED)


def test_worker_parses_every_kind_from_a_spool_path_without_extension(tmp_path):
    """Uploads are parsed from spool files named without the extension: no loader may
    depend on it (openpyxl does, so it is given a stream). OCR runs in the worker too,
    under the default PARSE_MAX_MEMORY_BYTES, and the worker goes on after it."""
    built = {
        "scan.png": (png_bytes(["Worker page 42"]), "Worker page 42"),
        "c.xlsx": (xlsx_bytes(), "city: Vienna"),
        "c.xls": (xls_bytes(), "river: Danube"),
        "d.pptx": (pptx_bytes(), "first | Merlin"),
        "b.epub": (epub_bytes(tmp_path), "The Danube flows through Vienna."),
        "m.eml": (eml_bytes(), "nine percent"),
        "s.pdf": (image_only_pdf([["Scanned glacier page"]]), "Scanned glacier page"),
    }
    pool = ParsePool(workers=1)
    try:
        for n, (name, (data, needle)) in enumerate(built.items()):
            spool = tmp_path / f"upload-{n}"
            spool.write_bytes(data)
            assert needle in pool.parse(name, spool), name
    finally:
        pool.close()


@pytest.fixture()
def client(stack) -> ChatchatClient:
    return ChatchatClient(stack.url, AUTH)


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_new_types_upload_and_search_through_the_api(client, stack, tmp_path):
    kb = new_kb_name()
    assert client.create_knowledge_base(kb, "faiss", stack.service.embedder.name)["code"] == 200
    files = [
        ("cities.xlsx", xlsx_bytes()),
        ("issues.jsonl", JSONL_SAMPLE.encode()),
        ("mail.eml", eml_bytes()),
        ("scan.png", png_bytes(["Glacier tongue melted", "Survey 2026"])),
        ("rivers.epub", epub_bytes(tmp_path)),
    ]
    r = client.upload_kb_docs(files, kb)
    assert r.status_code == 200, r.text
    assert client.list_kb_docs(kb) == sorted(name for name, _ in files)
    hits = client.search_kb_docs(kb, "glacier tongue survey", top_k=1)
    assert hits[0]["metadata"]["source"] == "scan.png"
    assert "Glacier tongue melted" in hits[0]["page_content"]
    hits = client.search_kb_docs(kb, "Which river flows through Vienna?", top_k=5)
    assert {"cities.xlsx", "rivers.epub"} & {h["metadata"]["source"] for h in hits}


@pytest.mark.parametrize("vs_type", ["faiss"])
@pytest.mark.parametrize("suffix", [".xlsx", ".pptx", ".png", ".msg", ".jsonl", ".rtf"])
def test_malformed_upload_is_a_4xx_naming_the_file(client, stack, suffix):
    kb = new_kb_name()
    assert client.create_knowledge_base(kb, "faiss", stack.service.embedder.name)["code"] == 200
    name = f"broken{suffix}"
    r = client.upload_kb_docs([("ok.txt", b"fine text"), (name, MALFORMED[suffix])], kb)
    assert r.status_code == 400, r.text
    assert name in r.json()["msg"]
    assert client.list_kb_docs(kb) == []
