"""No single document can exhaust the pod: zip bombs and element floods are refused early."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest

from chat_server.kb.loaders import DocumentError, ParseLimits, load_text


def docx_bytes(paragraphs: int) -> bytes:
    """A real python-docx document whose body then gets `paragraphs` empty paragraphs."""
    document = docx.Document()
    document.add_paragraph("real text")
    buffer = io.BytesIO()
    document.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "word/document.xml":
                data = data.replace(b"</w:body>", b"<w:p/>" * paragraphs + b"</w:body>", 1)
            target.writestr(item, data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_docx_with_millions_of_empty_paragraphs_is_refused_fast():
    bomb = docx_bytes(3_000_000)
    assert len(bomb) < 100_000  # tens of KB on the wire, 18 MB of XML inside
    with pytest.raises(DocumentError, match="PARSE_MAX_ELEMENTS") as err:
        load_text("bomb.docx", bomb)
    assert err.value.status == 413


def test_docx_whose_declared_unzipped_size_is_over_the_limit_is_refused_before_parsing():
    bomb = docx_bytes(3_000_000)
    with pytest.raises(DocumentError, match="bytes uncompressed.*PARSE_MAX_UNZIPPED_BYTES"):
        load_text("bomb.docx", bomb, ParseLimits(max_unzipped_bytes=1_000_000))


def test_ordinary_docx_still_reads():
    assert "real text" in load_text("ok.docx", docx_bytes(10))


def test_parse_deadline_stops_a_slow_document():
    with pytest.raises(DocumentError, match="PARSE_DEADLINE_S"):
        load_text("slow.docx", docx_bytes(200_000), ParseLimits(deadline_s=0.001))


def test_html_and_json_element_floods_are_refused():
    limits = ParseLimits(max_elements=1_000)
    with pytest.raises(DocumentError, match="PARSE_MAX_ELEMENTS"):
        load_text("flood.html", b"<a>" * 5_000, limits)
    with pytest.raises(DocumentError, match="PARSE_MAX_ELEMENTS"):
        load_text("flood.json", b"[" + b"0," * 5_000 + b"0]", limits)


def test_corrupt_docx_is_a_clear_400():
    with pytest.raises(DocumentError, match="not a valid .docx") as err:
        load_text("broken.docx", b"PK\x03\x04 not really a zip")
    assert err.value.status == 400
