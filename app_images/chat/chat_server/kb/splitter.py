"""Chinese-aware chunking on top of langchain-text-splitters, with optional title context."""

from __future__ import annotations

import re

from langchain_text_splitters import RecursiveCharacterTextSplitter

# Paragraphs first, then Chinese and Western sentence ends, then clause marks, then words.
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    r"\. ",
    "! ",
    r"\? ",
    "; ",
    "，",
    ", ",
    " ",
    "",
]
_SENTENCE_END = re.compile(r"[。！？；.!?;:：,，、]$")


def is_title(line: str) -> bool:
    """A short line without sentence punctuation at its end that contains letters."""
    line = line.strip()
    if not line or len(line) > 30 or _SENTENCE_END.search(line):
        return False
    if line.startswith("#"):
        return True
    letters = sum(ch.isalpha() for ch in line)
    return letters >= max(1, len(line) // 2)


def split_text(
    text: str, chunk_size: int, chunk_overlap: int, zh_title_enhance: bool = False
) -> list[str]:
    overlap = max(0, min(chunk_overlap, chunk_size - 1))
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=overlap,
        strip_whitespace=True,
    )
    chunks = [c for c in splitter.split_text(text) if c.strip()]
    if zh_title_enhance:
        chunks = enhance_with_titles(chunks)
    return chunks


def enhance_with_titles(chunks: list[str]) -> list[str]:
    """Prefix each chunk with the last title seen, so retrieval sees the section it is in."""
    title = ""
    out = []
    for chunk in chunks:
        first_line = chunk.lstrip().split("\n", 1)[0]
        if is_title(first_line):
            title = first_line.strip().lstrip("#").strip()
            out.append(chunk)
        elif title:
            out.append(f"下文与({title})有关。{chunk}")
        else:
            out.append(chunk)
    return out
