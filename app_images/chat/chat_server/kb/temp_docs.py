"""Temporary knowledge bases for Chatchat 0.2's file chat (`upload_temp_docs` + `file_chat`).

0.2 kept them in an in-memory faiss pool keyed by a temp-directory id, lost on restart; so are
these: chunks and their vectors in this process's memory, at most `max_kbs` of them (the least
recently used is dropped first) and each dropped after `ttl_s` without use. A chat with an id
this process does not hold (expired, another replica, a restart) is a 404 asking to upload again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TempChunk:
    file_name: str
    content: str


@dataclass
class TempKB:
    chunks: list[TempChunk]
    vectors: np.ndarray  # unit vectors, one row per chunk
    used_at: float


class TempDocs:
    def __init__(self, max_kbs: int = 64, ttl_s: float = 3600.0) -> None:
        self.max_kbs = max_kbs
        self.ttl_s = ttl_s
        self._kbs: OrderedDict[str, TempKB] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, kb in self._kbs.items() if now - kb.used_at > self.ttl_s]:
            del self._kbs[key]

    def put(self, prev_id: str | None, chunks: list[TempChunk], vectors: np.ndarray) -> str:
        """Store the chunks; `prev_id` (a temp KB this process holds) is replaced and kept as id."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            kb_id = prev_id if prev_id and prev_id in self._kbs else uuid.uuid4().hex
            self._kbs.pop(kb_id, None)
            self._kbs[kb_id] = TempKB(chunks, vectors, now)
            while len(self._kbs) > self.max_kbs:
                self._kbs.popitem(last=False)
        return kb_id

    def search(
        self, kb_id: str, vector: np.ndarray, top_k: int, score_threshold: float
    ) -> list[tuple[TempChunk, float]] | None:
        """Nearest chunks with the L2 distance of unit vectors (as the stores report it), kept
        when `<= score_threshold`; None when the id is unknown here."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            kb = self._kbs.get(kb_id)
            if kb is None:
                return None
            kb.used_at = now
            self._kbs.move_to_end(kb_id)
        if not kb.chunks:
            return []
        sims = kb.vectors @ vector
        order = np.argsort(-sims)[:top_k]
        found = []
        for i in order:
            distance = float(np.sqrt(max(0.0, 2.0 - 2.0 * float(sims[i]))))
            if distance <= score_threshold:
                found.append((kb.chunks[int(i)], distance))
        return found

    def __contains__(self, kb_id: object) -> bool:
        with self._lock:
            return kb_id in self._kbs
