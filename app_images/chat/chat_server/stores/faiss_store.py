"""faiss indexes on the KB volume: one file per knowledge base, atomic writes, one writer."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from chat_server.stores.base import MetaStore

# Queries are single vectors: OpenMP fan-out only adds spin-wait latency, worst on busy nodes.
faiss.omp_set_num_threads(1)


def sqlite_meta(kb_root: Path) -> MetaStore:
    kb_root.mkdir(parents=True, exist_ok=True)
    db_path = kb_root / "info.sqlite"

    @contextmanager
    def connect() -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:  # commits on success, rolls back on error
                yield conn
        finally:
            conn.close()

    return MetaStore(connect, "?")


class FaissIndex:
    """Exact inner-product search over unit vectors (= cosine), persisted after every change."""

    def __init__(self, directory: Path, dim: int) -> None:
        self.directory = directory
        self.path = directory / "index.faiss"
        self.dim = dim
        self._lock = threading.RLock()
        self._in_bulk = False
        directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.index = faiss.read_index(str(self.path))
            if self.index.d != dim:
                raise ValueError(
                    f"faiss index {self.path} has dimension {self.index.d}, "
                    f"the embedding model gives {dim}"
                )
        else:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @contextmanager
    def _writer(self) -> Iterator[None]:
        # In-process lock plus an advisory file lock: one writer per index across processes.
        with self._lock, open(self.directory / ".write.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
                self._save()
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Several adds/deletes, one atomic save at the end."""
        with self._writer():
            self._in_bulk = True
            try:
                yield
            finally:
                self._in_bulk = False

    @contextmanager
    def _change(self) -> Iterator[None]:
        if self._in_bulk:
            yield
        else:
            with self._writer():
                yield

    def _save(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".index-", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._change():
            self.index.add_with_ids(vectors, ids.astype(np.int64))

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._change():
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        with self._lock:
            if self.index.ntotal == 0:
                return []
            sims, ids = self.index.search(vector.reshape(1, -1), min(top_k, self.index.ntotal))
        out = []
        for sim, idx in zip(sims[0], ids[0], strict=True):
            if idx < 0:
                continue
            out.append((int(idx), float(np.sqrt(max(0.0, 2.0 - 2.0 * float(sim))))))
        return out

    def ids(self) -> np.ndarray:
        with self._lock:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def count(self) -> int:
        return int(self.index.ntotal)

    def drop(self) -> None:
        with self._lock:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
