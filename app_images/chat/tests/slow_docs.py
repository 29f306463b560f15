"""Real documents that are slow or huge to parse, for the parse-bound tests."""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def one_page_pdf(text_ops: int) -> bytes:
    """A valid one-page PDF whose content stream shows `text_ops` words, one operator each.

    pypdf extracts a page's text in one call, so a page of many operators is slow to parse
    and the loaders' own between-pages deadline check cannot stop it: only a kill can.
    """
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 12 Tf 10 700 Td " + b"(word ) Tj 1 0 Td " * text_ops + b"ET")
    page[NameObject("/Contents")] = writer._add_object(content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
