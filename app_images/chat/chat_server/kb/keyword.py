"""Keyword search: BM25 (bm25s) over Chinese-aware tokens (jieba), derived from stored chunks.

There is no keyword file on disk: each knowledge base's BM25 index is built in memory from the
chunk texts in its metadata store, and rebuilt whenever the store's chunk signature (count and
largest id; ids are never reused while a knowledge base lives) differs from the one it was
built at. So uploads, deletes, rebuilds, writes of other processes, restarts and crashes can
never leave the keyword side disagreeing with the listing: it is recomputed from the listing.
Tokens are cached per chunk id, so a change re-tokenizes only the new chunks.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

# A token worth indexing has a letter, a digit or a CJK ideograph; punctuation and spaces not.
_WORDLIKE = re.compile(r"[0-9a-z\u00c0-\u024f\u0400-\u04ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
# Function words whose BM25 weight would only add noise to short chunks.
_STOPWORD_TEXT = (
    "a an and are as at be by for from has have how in is it its of on or that the this to "
    "was were what when where which who why will with do does can i you we my our your "
    "的 了 是 在 和 与 及 或 也 就 都 而 把 被 对 从 向 为 以 于 吗 呢 吧 啊 么 什么 怎么 如何 "
    "哪些 哪个 多少 是否 可以 需要 应该 一个 这个 那个 我 我们 你 你们 他 她 它 请问"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split(" "))

_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba() -> object:
    """jieba with its dictionary loaded once (quietly: it logs to stderr at INFO)."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def tokenize(text: str) -> list[str]:
    """Lower-cased search tokens: jieba's search-mode words (a long word also yields the shorter
    words inside it), Latin words whole; punctuation and stopwords dropped."""
    jieba = _jieba()
    words = jieba.cut_for_search(text.lower())  # type: ignore[attr-defined]
    return [w for w in (w.strip() for w in words) if _WORDLIKE.search(w) and w not in STOPWORDS]


# (count, largest id): changes on every insert (ids are fresh and increasing) and every delete.
Signature = tuple[int, int]


@dataclass
class _KbKeywords:
    signature: Signature | None = None
    tokens: dict[int, list[str]] = field(default_factory=dict)
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bm25: object | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeywordIndexes:
    """BM25 indexes of every knowledge base that was searched by keywords, kept in memory."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._kbs: dict[str, _KbKeywords] = {}
        self._guard = threading.Lock()
        self.tokenized_chunks = 0  # counts work, so tests can see that unchanged KBs cost none

    def _entry(self, kb: str) -> _KbKeywords:
        with self._guard:
            return self._kbs.setdefault(kb, _KbKeywords())

    def forget(self, kb: str) -> None:
        """Drop a KB's index (it was deleted or emptied): the next search rebuilds it."""
        with self._guard:
            self._kbs.pop(kb, None)

    def search(
        self,
        kb: str,
        query: str,
        top_k: int,
        signature: Callable[[], Signature],
        chunk_ids: Callable[[], Iterable[int]],
        chunk_texts: Callable[[list[int]], dict[int, str]],
    ) -> list[tuple[int, float]]:
        """The `top_k` chunk ids with the highest BM25 score (> 0: a query word occurs), best
        first. The three callables read the store; they are called only when it changed."""
        entry = self._entry(kb)
        with entry.lock:
            self._refresh(entry, signature, chunk_ids, chunk_texts)
            bm25 = entry.bm25
            ids = entry.ids
        if bm25 is None or top_k <= 0:
            return []
        token_ids = bm25.get_tokens_ids(tokenize(query))  # type: ignore[attr-defined]
        if not token_ids:
            return []
        scores = np.asarray(bm25.get_scores_from_ids(token_ids))  # type: ignore[attr-defined]
        k = min(top_k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in best if scores[i] > 0]

    def _refresh(
        self,
        entry: _KbKeywords,
        signature: Callable[[], Signature],
        chunk_ids: Callable[[], Iterable[int]],
        chunk_texts: Callable[[list[int]], dict[int, str]],
    ) -> None:
        # Read the signature before the chunks: a write in between makes the next search
        # see a newer signature than the one stored here, and rebuild again.
        current = signature()
        if current == entry.signature:
            return
        ids = sorted(set(chunk_ids()))
        known = entry.tokens
        fresh = [i for i in ids if i not in known]
        texts = chunk_texts(fresh) if fresh else {}
        self.tokenized_chunks += len(texts)
        tokens = {i: known[i] for i in ids if i in known}
        tokens.update((i, tokenize(text)) for i, text in texts.items())
        kept = sorted(tokens)  # a chunk deleted since the id list was read is left out
        entry.tokens = tokens
        entry.ids = np.asarray(kept, dtype=np.int64)
        entry.bm25 = self._build([tokens[i] for i in kept]) if kept else None
        entry.signature = current

    def _build(self, corpus: list[list[str]]) -> object:
        import bm25s

        bm25 = bm25s.BM25(k1=self.k1, b=self.b, csc_backend="auto")
        bm25.index(corpus, show_progress=False)
        return bm25
