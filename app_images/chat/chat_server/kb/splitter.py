"""Chinese-aware chunking on top of langchain-text-splitters, with optional title context.

`chunk_size` counts characters, as the 0.2 API's field does; with a `TokenWindow` no chunk
leaves here longer than the embedding model reads (its own tokenizer counts): a chunk that does
not fit is split again at the window, and the number of such chunks is reported, so the upload
answer can say that the chunk size was clamped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TokenWindow:
    """What the embedding model reads: `max_tokens` of text (its special tokens left out),
    counted by `count` (its own tokenizer, a batch of texts at a time)."""

    max_tokens: int
    count: Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class SplitResult:
    chunks: list[str]
    # Chunks that were longer than the token window at this chunk_size and were cut to fit.
    clamped: int = 0


def _splitter(
    size: int, overlap: int, length: Callable[[str], int] = len
) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=size,
        chunk_overlap=max(0, min(overlap, size - 1)),
        length_function=length,
        strip_whitespace=True,
    )


def split_text(
    text: str, chunk_size: int, chunk_overlap: int, zh_title_enhance: bool = False
) -> list[str]:
    return split_document(text, chunk_size, chunk_overlap, zh_title_enhance).chunks


def split_document(
    text: str,
    chunk_size: int,
    chunk_overlap: int,
    zh_title_enhance: bool = False,
    window: TokenWindow | None = None,
) -> SplitResult:
    pieces = [c for c in _splitter(chunk_size, chunk_overlap).split_text(text) if c.strip()]
    prefixes = title_prefixes(pieces) if zh_title_enhance else [""] * len(pieces)
    if window is None:
        return SplitResult([p + c for p, c in zip(prefixes, pieces, strict=True)])
    counts = window.count([p + c for p, c in zip(prefixes, pieces, strict=True)])
    chunks: list[str] = []
    clamped = 0
    for prefix, piece, tokens in zip(prefixes, pieces, counts, strict=True):
        if tokens <= window.max_tokens:
            chunks.append(prefix + piece)
            continue
        clamped += 1
        budget = max(8, window.max_tokens - (window.count([prefix])[0] if prefix else 0))
        # The same share of overlap as asked for in characters, now in tokens.
        overlap = chunk_overlap * budget // max(1, chunk_size)
        refit = _splitter(budget, overlap, lambda t: window.count([t])[0]).split_text(piece)
        for c in refit:
            chunks.extend(prefix + part for part in _halve_to_fit(c, budget, window) if part)
    return SplitResult(chunks, clamped)


def _halve_to_fit(text: str, budget: int, window: TokenWindow) -> list[str]:
    """The merge above adds token counts of pieces, which a word cut at a piece's edge can
    exceed by a token or two: such a rare chunk is halved until it fits."""
    text = text.strip()
    if len(text) <= 1 or window.count([text])[0] <= budget:
        return [text]
    middle = len(text) // 2
    return _halve_to_fit(text[:middle], budget, window) + _halve_to_fit(
        text[middle:], budget, window
    )


def title_prefixes(chunks: list[str]) -> list[str]:
    """Per chunk, the title context to put before it: the last title seen (a title chunk
    itself gets none), so retrieval sees the section a chunk is in."""
    title = ""
    out = []
    for chunk in chunks:
        first_line = chunk.lstrip().split("\n", 1)[0]
        if is_title(first_line):
            title = first_line.strip().lstrip("#").strip()
            out.append("")
        else:
            out.append(f"下文与({title})有关。" if title else "")
    return out


def enhance_with_titles(chunks: list[str]) -> list[str]:
    """Prefix each chunk with the last title seen, so retrieval sees the section it is in."""
    return [p + c for p, c in zip(title_prefixes(chunks), chunks, strict=True)]
