"""faiss indexes on the KB volume: one file per knowledge base, atomic writes, one writer.

Crash consistency comes from the write order the service follows (vectors saved, then the
metadata that names them, then old vectors removed) and from `reconcile`, which runs whenever
an index is (re)loaded by the writer: vectors no metadata names are removed, and files whose
vectors are missing are forgotten, so that a re-upload embeds them again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from chat_server.stores.base import KnowledgeBaseLocked, MetaStore, fault_point

log = logging.getLogger(__name__)

# Queries are single vectors: OpenMP fan-out only adds spin-wait latency, worst on busy nodes.
faiss.omp_set_num_threads(1)

# Given the ids in a freshly loaded index, return the ids no metadata names (to remove).
Reconcile = Callable[[np.ndarray], list[int]]


def sqlite_connection(db_path: Path) -> Callable[[], AbstractContextManager[sqlite3.Connection]]:
    """Connections to one SQLite file, each a transaction: committed on success."""
    db_path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect() -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:  # commits on success, rolls back on error
                yield conn
        finally:
            conn.close()

    return connect


def sqlite_meta(kb_root: Path) -> MetaStore:
    return MetaStore(sqlite_connection(kb_root / "info.sqlite"), "?", "sqlite")


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat): pid reuse shows."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class WriterLease:
    """One writer for every faiss knowledge base under a KB root, across processes and nodes.

    Two guards: an flock held for the process lifetime (exact on one node, released by the
    kernel when the holder dies, even by SIGKILL), and a lease file naming pid, host and a
    heartbeat, for volumes where locks do not reach other nodes (NFSv3 `nolock`): a lease of
    another host is live while its heartbeat is younger than `ttl_s`.
    """

    def __init__(self, kb_root: Path, ttl_s: float = 30.0) -> None:
        self.path = kb_root / ".faiss-writer.json"
        self.lock_path = kb_root / ".faiss-writer.lock"
        self.ttl_s = ttl_s
        self.host = socket.gethostname()
        self.token = uuid.uuid4().hex
        self._fd: int | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read(self) -> dict[str, Any]:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _write(self) -> None:
        body = {
            "pid": os.getpid(),
            "host": self.host,
            "start": _process_start(os.getpid()),
            "token": self.token,
            "heartbeat": time.time(),
        }
        tmp = self.path.with_name(f".faiss-writer.{self.token}.tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)

    @staticmethod
    def describe(holder: dict[str, Any]) -> str:
        age = time.time() - float(holder.get("heartbeat", 0))
        return f"pid {holder.get('pid')} on host {holder.get('host')!r} (heartbeat {age:.0f}s ago)"

    def ensure(self) -> None:
        """Be the writer or raise KnowledgeBaseLocked; checked before every write."""
        with self._guard:
            if self._fd is not None:
                holder = self._read()
                if holder.get("token") == self.token:
                    return
                self._release_locked()
                raise KnowledgeBaseLocked(
                    "this process lost the faiss writer lease to "
                    f"{self.describe(holder)}; refusing to write"
                )
            self._acquire()

    def _acquire(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KnowledgeBaseLocked(
                "another live process writes the faiss knowledge bases on this volume: "
                f"{self.describe(self._read())}; refusing to write (faiss has one writer: run "
                "one chat replica, or use vector_store_type=adb)"
            ) from None
        holder = self._read()
        fresh = time.time() - float(holder.get("heartbeat", 0)) < self.ttl_s
        if holder and holder.get("host") != self.host and fresh:
            os.close(fd)  # closing releases the flock
            raise KnowledgeBaseLocked(
                "another process on another node writes the faiss knowledge bases on this "
                f"volume: {self.describe(holder)}; refusing to write until its lease expires "
                f"({self.ttl_s:.0f}s without heartbeat)"
            )
        if holder:
            log.warning("faiss writer lease taken over", extra={"previous": holder})
        self._fd = fd
        self._write()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="faiss-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            with self._guard:
                if self._fd is None or self._read().get("token") != self.token:
                    return
                self._write()

    def _release_locked(self) -> None:
        self._stop.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        with self._guard:
            if self._fd is not None and self._read().get("token") == self.token:
                self.path.unlink(missing_ok=True)
            self._release_locked()


class FaissIndex:
    """Exact inner-product search over unit vectors (= cosine), persisted on every change.

    Writes need the `lease`; an index file changed on disk since it was loaded (another
    process wrote it) is reloaded before a search or a write, and reconciled before a write.
    """

    def __init__(
        self,
        directory: Path,
        dim: int,
        lease: WriterLease | None = None,
        reconcile: Reconcile | None = None,
    ) -> None:
        self.directory = directory
        self.path = directory / "index.faiss"
        self.dim = dim
        self.lease = lease
        self._reconcile = reconcile
        self._lock = threading.RLock()
        self._in_bulk = False
        self._dirty = False
        self._dropped = False
        self._loaded: tuple[int, int, int] | None = None
        self._reconciled = False
        directory.mkdir(parents=True, exist_ok=True)
        self.index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._load()

    def _disk_state(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        state = self._disk_state()
        if state is None:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        else:
            # Loaded whatever its dimension: a KB of a model of another dimension can still
            # be listed, recovered and deleted from, and is refused vectors (`add`, `search`)
            # until a rebuild drops it (KnowledgeService._fit_dimension).
            self.index = faiss.read_index(str(self.path))
        self._loaded = state
        self._reconciled = False

    def _refresh(self) -> None:
        if not self._dirty and self._disk_state() != self._loaded:
            self._load()

    def recover(self) -> None:
        """Reconcile now (start-up); needs the lease."""
        with self._writer():
            pass

    @contextmanager
    def _writer(self) -> Iterator[None]:
        with self._lock:
            if self.lease is not None:
                self.lease.ensure()
            self._dropped = False
            self._refresh()
            if not self._reconciled:
                self._reconciled = True
                if self._reconcile is not None:
                    orphans = self._reconcile(self.ids())
                    if orphans:
                        log.warning(
                            "faiss orphan vectors removed",
                            extra={"index": str(self.path), "vectors": len(orphans)},
                        )
                        self.index.remove_ids(np.asarray(orphans, dtype=np.int64))
                        self._dirty = True
            yield
            self.flush()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Several adds/deletes in one writer turn; saved at `flush` and at the end."""
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

    def flush(self) -> None:
        with self._lock:
            if self._dirty and not self._dropped:
                self._save()
            self._dirty = False

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".index-", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            fault_point("faiss.tmp_written")
            os.replace(tmp, self.path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a power cut
            finally:
                os.close(dir_fd)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._loaded = self._disk_state()

    def _check_dim(self, got: int) -> None:
        if got != self.index.d:
            raise ValueError(
                f"faiss index {self.path} holds vectors of dimension {self.index.d}, "
                f"not {got}: rebuild the knowledge base (recreate_vector_store)"
            )

    def stored_dim(self) -> int | None:
        """The dimension of the vectors in the index file (None: there is none yet)."""
        with self._lock:
            if not self._in_bulk:
                self._refresh()
            return None if self._loaded is None and not self._dirty else int(self.index.d)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._change():
            self._check_dim(vectors.shape[1])
            self.index.add_with_ids(vectors, ids.astype(np.int64))
            self._dirty = True

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._change():
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
            self._dirty = True

    def search(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        with self._lock:
            if not self._in_bulk:
                self._refresh()
            if self.index.ntotal == 0:
                return []
            self._check_dim(vector.shape[-1])
            sims, ids = self.index.search(vector.reshape(1, -1), min(top_k, self.index.ntotal))
        out = []
        for sim, idx in zip(sims[0], ids[0], strict=True):
            if idx < 0:
                continue
            out.append((int(idx), float(np.sqrt(max(0.0, 2.0 - 2.0 * float(sim))))))
        return out

    def distances(self, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
        out = {}
        with self._lock:
            if not self._in_bulk:
                self._refresh()
            if ids:
                self._check_dim(vector.shape[-1])
            for i in ids:
                try:
                    stored = self.index.reconstruct(int(i))
                except RuntimeError:  # no vector under this id (IndexIDMap2 raises)
                    continue
                out[int(i)] = float(np.linalg.norm(stored - vector))
        return out

    def ids(self) -> np.ndarray:
        with self._lock:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def count(self) -> int:
        return int(self.index.ntotal)

    def drop(self) -> None:
        with self._change():
            shutil.rmtree(self.directory, ignore_errors=True)
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            self._dirty = False
            self._dropped = True
            self._loaded = None
