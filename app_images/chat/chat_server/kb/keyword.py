"""Keyword search: BM25 (bm25s) over Chinese-aware tokens (jieba), derived from stored chunks.

There is no keyword file on disk: each knowledge base's BM25 index is built in memory from the
chunk texts in its metadata store, and rebuilt whenever the store's chunk signature (count and
largest id; ids are never reused while a knowledge base lives) differs from the one it was
built at. So uploads, deletes, rebuilds, writes of other processes, restarts and crashes can
never leave the keyword side disagreeing with the listing: it is recomputed from the listing.
Tokens are cached per chunk id as ids into the KB's vocabulary (4 bytes a token, not a Python
string), so a change re-tokenizes only the new chunks. bm25s has no incremental update: the
matrix is rebuilt whole, in the searching thread on small KBs (every committed write is found)
and on a low-priority thread of its own on large ones (`SYNC_REBUILD_CHUNKS`): searches go on
against the previous index meanwhile, near-real-time like a search engine's refresh.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from chat_server.kb.embeddings import lower_priority

if TYPE_CHECKING:
    from chat_server.stores.base import MetaStore

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

# Up to this many chunks a search that finds the store changed rebuilds the index itself and
# sees every committed write (about 0.15 s of BM25 build, plus the tokens of new chunks, on the
# 2-core dev machine). Above it, a search is answered from the index it has while one
# low-priority thread rebuilds: a full build of 600,000 chunks takes tens of seconds.
SYNC_REBUILD_CHUNKS = 5_000
# A background rebuild waits this many times the previous build's CPU time after it, so
# rebuilds take at most a quarter of a core however fast a KB is written (CPU time, not wall
# time: a build slowed by busy searches holding the GIL does not lengthen the rest).
REBUILD_REST_FACTOR = 3.0


@dataclass(frozen=True)
class ChunkSource:
    """How an index reads its KB's chunks from the store; called only when it changed."""

    signature: Callable[[], Signature]
    chunk_ids: Callable[[], Iterable[int]]
    chunk_texts: Callable[[list[int]], dict[int, str]]

    @classmethod
    def from_store(cls, meta: MetaStore, kb: str) -> ChunkSource:
        return cls(
            signature=lambda: meta.chunk_signature(kb),
            chunk_ids=lambda: meta.iter_all_chunk_ids(kb),
            chunk_texts=lambda ids: meta.chunk_texts(kb, ids),
        )


@dataclass
class _KbKeywords:
    signature: Signature | None = None  # the store's signature the index was built at
    vocab: dict[str, int] = field(default_factory=dict)  # token -> id, only ever grows
    tokens: dict[int, np.ndarray] = field(default_factory=dict)  # chunk id -> token ids
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bm25: object | None = None
    build_s: float = 0.0  # the CPU time of the last build
    built_at: float = float("-inf")  # time.monotonic() when it finished
    rebuilding: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards the fields above
    build_lock: threading.Lock = field(default_factory=threading.Lock)  # one build at a time


class KeywordIndexes:
    """BM25 indexes of every knowledge base that was searched by keywords, kept in memory."""

    def __init__(
        self,
        k1: float = 1.2,
        b: float = 0.75,
        *,
        sync_rebuild_chunks: int = SYNC_REBUILD_CHUNKS,
        rest_factor: float = REBUILD_REST_FACTOR,
    ) -> None:
        self.k1 = k1
        self.b = b
        self.sync_rebuild_chunks = sync_rebuild_chunks
        self.rest_factor = rest_factor
        self._kbs: dict[str, _KbKeywords] = {}
        self._guard = threading.Lock()
        self._closed = threading.Event()
        self.tokenized_chunks = 0  # counts work, so tests can see that unchanged KBs cost none
        self.builds = 0

    def _entry(self, kb: str) -> _KbKeywords:
        with self._guard:
            return self._kbs.setdefault(kb, _KbKeywords())

    def forget(self, kb: str) -> None:
        """Drop a KB's index (it was deleted or emptied): the next search rebuilds it."""
        with self._guard:
            self._kbs.pop(kb, None)

    def close(self) -> None:
        """Background rebuilds still running drop their work instead of storing it."""
        self._closed.set()

    def search(
        self,
        kb: str,
        query: str,
        top_k: int,
        source: ChunkSource,
    ) -> list[tuple[int, float]]:
        """The `top_k` chunk ids with the highest BM25 score (> 0: a query word occurs), best
        first. `source` reads the store, only when it changed.

        On a KB of more than `sync_rebuild_chunks` chunks whose index exists, a change is
        picked up by a background rebuild and this search is answered from the index as it
        was: ids of chunks deleted since may come back (callers read the chunks from the store
        and drop the missing ones) and chunks written since are found once the rebuild is in."""
        entry = self._entry(kb)
        self._refresh(kb, entry, source)
        with entry.lock:
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

    def warm(self, kb: str, source: ChunkSource) -> None:
        """Build a KB's index on a background thread now (at start-up: tokenizing a large KB
        takes minutes), so that its first keyword search does not pay for it."""
        entry = self._entry(kb)
        self._start_background(kb, entry, source, rest=False)

    @staticmethod
    def _built_signature(entry: _KbKeywords) -> Signature | None:
        with entry.lock:
            return entry.signature

    def _refresh(self, kb: str, entry: _KbKeywords, source: ChunkSource) -> None:
        current = source.signature()
        built = self._built_signature(entry)
        if current == built:
            return
        if built is not None and current[0] > self.sync_rebuild_chunks:  # stale is allowed
            self._start_background(kb, entry, source, rest=True)
            return
        with entry.build_lock:  # waits for a build in progress, then checks again
            self._build_entry(entry, source)

    def _start_background(
        self, kb: str, entry: _KbKeywords, source: ChunkSource, *, rest: bool
    ) -> None:
        with entry.lock:
            if entry.rebuilding:
                return
            if rest and time.monotonic() < entry.built_at + self.rest_factor * entry.build_s:
                return  # the next search after the rest starts it
            entry.rebuilding = True

        def run() -> None:
            lower_priority()
            try:
                with entry.build_lock:
                    self._build_entry(entry, source)
            except Exception:
                if not self._closed.is_set():
                    log.exception("keyword index rebuild failed", extra={"kb": kb})
            finally:
                with entry.lock:
                    entry.rebuilding = False

        threading.Thread(target=run, name=f"keyword-index-{kb}", daemon=True).start()

    def _build_entry(self, entry: _KbKeywords, source: ChunkSource) -> None:
        """Bring the index up to the store; the caller holds `entry.build_lock`."""
        # Read the signature before the chunks: a write in between makes the next search
        # see a newer signature than the one stored here, and rebuild again.
        current = source.signature()
        if current == self._built_signature(entry):
            return  # another thread built it while this one waited
        started = time.thread_time()  # CPU time: waits for the GIL or a core do not count
        ids = sorted(set(source.chunk_ids()))
        known = entry.tokens
        fresh = [i for i in ids if i not in known]
        texts = source.chunk_texts(fresh) if fresh else {}
        with self._guard:
            self.tokenized_chunks += len(texts)
        vocab = entry.vocab
        tokens = {i: known[i] for i in ids if i in known}
        for i, text in texts.items():
            words = tokenize(text)
            tokens[i] = np.fromiter(
                (vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int32, count=len(words)
            )
        kept = sorted(tokens)  # a chunk deleted since the id list was read is left out
        # bm25s adds its empty token to the vocabulary it is given: give it a copy.
        bm25 = self._build([tokens[i] for i in kept], dict(vocab)) if kept else None
        cpu_s = time.thread_time() - started
        if self._closed.is_set():
            return
        with entry.lock:
            entry.tokens = tokens
            entry.ids = np.asarray(kept, dtype=np.int64)
            entry.bm25 = bm25
            entry.signature = current
            entry.build_s = cpu_s
            entry.built_at = time.monotonic()
        with self._guard:
            self.builds += 1

    def _build(self, corpus: list[np.ndarray], vocab: dict[str, int]) -> object:
        import bm25s

        bm25 = bm25s.BM25(k1=self.k1, b=self.b, csc_backend="auto")
        bm25.index((corpus, vocab), show_progress=False)
        return bm25
