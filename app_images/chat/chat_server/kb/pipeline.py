"""The stages of a pipelined ingestion: parse (worker processes) -> embed -> write, overlapping.

Parsing runs in the parse pool's worker processes, several files at once, in order, a bounded
number ahead; embedding takes whole files in windows of about `window_chunks` chunks (cut into
batches of like token counts inside `Embedder.encode_background`, so batches pad little) on a
thread of its own; the caller writes each embedded window while the next is parsed and
embedded. Every queue between the stages is bounded, so the memory an upload holds in flight
does not grow with its size. A failure in any stage stops the others and is raised to the
caller, which writes nothing of it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from chat_server.kb.spool import IncomingFile

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    ahead: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """`map(fn, items)` on `workers` threads (each first running `initializer`), in order, at
    most `ahead` results in flight; the first exception is raised where its item would have
    been yielded."""
    pool = ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="ingest-parse", initializer=initializer
    )
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def windows(items: Iterable[T], size: Callable[[T], int], window: int) -> Iterator[list[T]]:
    """Consecutive groups of whole items, each closed once its sizes reach `window`."""
    group: list[T] = []
    total = 0
    for item in items:
        group.append(item)
        total += size(item)
        if total >= window:
            yield group
            group, total = [], 0
    if group:
        yield group


@dataclass
class Embedded(Generic[T]):
    """A window of parsed files and the vectors of their chunks, in the files' order."""

    items: list[T]
    vectors: np.ndarray


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


class EmbedStage(Generic[T]):
    """Embeds windows of `items` on a thread of its own, a bounded queue ahead of the reader.

    Iterate it to get `Embedded` windows in order; `close()` (or leaving a `with`) stops it
    early, e.g. when the writer failed."""

    def __init__(
        self,
        items: Iterable[T],
        texts: Callable[[T], list[str]],
        encode: Callable[[list[str]], np.ndarray],
        window_chunks: int,
        queue_size: int = 2,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        """`initializer` runs first on the stage's thread (e.g. to lower its priority)."""
        self._items = items
        self._texts = texts
        self._encode = encode
        self._window = window_chunks
        self._initializer = initializer
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-embed", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            if self._initializer is not None:
                self._initializer()
            for group in windows(self._items, lambda i: len(self._texts(i)), self._window):
                if self._stop.is_set():
                    return
                texts = [t for item in group for t in self._texts(item)]
                if not self._put(Embedded(group, self._encode(texts))):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # an `ordered_map` stopped early cancels the parses not yet begun

    def __iter__(self) -> Iterator[Embedded[T]]:
        while True:
            got = self._queue.get()
            if got is _DONE:
                return
            if isinstance(got, _Failed):
                raise got.exc
            assert isinstance(got, Embedded)
            yield got

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> EmbedStage[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PreparedFile:
    """A parsed, fingerprinted and split file (no chunks when it is stored unchanged)."""

    file: IncomingFile
    fingerprint: str
    chunks: list[str]
    clamped: int
    unchanged: bool = False


@dataclass(frozen=True)
class IngestProgress:
    """One file of an ingestion, as its vectors are ready (`unchanged`: nothing to embed)."""

    kb: str
    file_name: str
    unchanged: bool
    chunks: int
    files_done: int
    files_total: int
    chunks_done: int


class IngestTracker:
    """Counts the files of one ingestion, tells `progress` of each, and logs a progress line
    every `log_every_s` seconds (large uploads are visible in the log while they run)."""

    def __init__(
        self,
        kb: str,
        files_total: int,
        progress: Callable[[IngestProgress], None] | None,
        log_every_s: float = 10.0,
    ) -> None:
        self.kb = kb
        self.files_total = files_total
        self.progress = progress
        self.log_every_s = log_every_s
        self.files_done = 0
        self.chunks_done = 0
        self._started = time.monotonic()
        self._logged = self._started

    def track(self, windows: Iterable[Embedded[PreparedFile]]) -> Iterator[Embedded[PreparedFile]]:
        for window in windows:
            for p in window.items:
                self.files_done += 1
                self.chunks_done += len(p.chunks)
                if self.progress is not None:
                    self.progress(
                        IngestProgress(
                            self.kb,
                            p.file.name,
                            p.unchanged,
                            len(p.chunks),
                            self.files_done,
                            self.files_total,
                            self.chunks_done,
                        )
                    )
            now = time.monotonic()
            if now - self._logged >= self.log_every_s:
                self._logged = now
                log.info(
                    "ingest progress",
                    extra={
                        "kb": self.kb,
                        "files_done": self.files_done,
                        "files_total": self.files_total,
                        "chunks_done": self.chunks_done,
                        "chunks_per_s": round(self.chunks_done / (now - self._started), 1),
                    },
                )
            yield window
