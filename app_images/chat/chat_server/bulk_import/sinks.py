"""Where a shard's results go: straight into PostgreSQL, or to the chat service's API.

- `DatabaseSink` (adb KBs, the pod has the PG_* settings): every pod is a writer of its own,
  through the service's store code (`KnowledgeService.store_embedded`); a batch's chunks,
  vectors and file outcomes commit in one transaction.
- `ApiSink` (faiss KBs, or no database settings): the pod never touches the faiss files; it
  hands each batch to `POST /knowledge_base/import_shard` of the chat service, the single
  writer, which stores it in the same crash-consistent order.

Both raise `Unavailable` for what a retry may cure (database or service down) and
`ImportRefused` for what it cannot (a wrong key, a model mismatch).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx

from chat_server.bulk_import.wire import encode_vectors
from chat_server.kb.service import EmbeddedFile, KnowledgeService
from chat_server.stores.base import DatabaseUnavailable
from chat_server.stores.imports import FileOutcome


class Unavailable(RuntimeError):
    """The database or the chat service cannot be reached right now."""


class ImportRefused(RuntimeError):
    """The store refused the import for a reason a retry does not change."""


class Sink(Protocol):
    kind: str
    max_batch_bytes: int | None

    def start(self, listed: int) -> int: ...

    def fingerprints(self, file_names: list[str]) -> dict[str, str]: ...

    def store(self, files: list[EmbeddedFile], outcomes: list[FileOutcome]) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class DatabaseSink:
    kind: str = "database"
    max_batch_bytes: int | None = None

    def __init__(
        self, service: KnowledgeService, kb: str, import_id: str, shard: int, shard_count: int
    ) -> None:
        self.service = service
        self.kb = kb
        self.import_id = import_id
        self.shard = shard
        self.shard_count = shard_count
        self.imports = service.import_store(kb)
        self.attempt = 0

    def _call(self, fn: Any, *args: Any) -> Any:
        from psycopg import IntegrityError

        try:
            return fn(*args)
        except DatabaseUnavailable as exc:
            raise Unavailable(exc.message) from exc
        except IntegrityError as exc:
            # Pods that start together race to make the same tables (CREATE TABLE IF NOT
            # EXISTS is not atomic in PostgreSQL); the loser's transaction is rolled back and
            # its retry finds the tables made.
            raise Unavailable(f"concurrent schema change: {exc}") from exc

    def start(self, listed: int) -> int:
        self.attempt = self._call(
            self.imports.start_shard, self.kb, self.import_id, self.shard, self.shard_count, listed
        )
        return self.attempt

    def fingerprints(self, file_names: list[str]) -> dict[str, str]:
        found: dict[str, str] = self._call(self.service.stored_fingerprints, self.kb, file_names)
        return found

    def store(self, files: list[EmbeddedFile], outcomes: list[FileOutcome]) -> None:
        def record() -> None:
            self.imports.record(self.kb, self.import_id, self.shard, self.attempt, outcomes)

        if files:
            self._call(self.service.store_embedded, self.kb, files, record)
        else:
            self._call(record)

    def finish(self) -> None:
        self._call(self.imports.finish_shard, self.kb, self.import_id, self.shard)

    def close(self) -> None:
        return None


class ApiSink:
    kind: str = "api"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        kb: str,
        import_id: str,
        shard: int,
        shard_count: int,
        embed_model: str,
        max_batch_bytes: int,
        timeout_s: float = 300.0,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
        )
        self.kb = kb
        self.import_id = import_id
        self.shard = shard
        self.shard_count = shard_count
        self.embed_model = embed_model
        self.max_batch_bytes: int | None = max_batch_bytes
        self.attempt = 0

    def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            r = self.http.post(path, json=body)
        except httpx.TransportError as exc:
            raise Unavailable(f"chat API at {self.http.base_url} unreachable: {exc}") from exc
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise Unavailable(f"chat API {path} answered {r.status_code}: {r.text[:300]}")
        if r.status_code >= 400:
            raise ImportRefused(f"chat API {path} answered {r.status_code}: {r.text[:500]}")
        return r.json().get("data")

    def check(self, file_names: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = self.post(
            "/knowledge_base/import_check",
            {"knowledge_base_name": self.kb, "file_names": file_names},
        )
        return data

    def _shard(self, phase: str, **extra: Any) -> Any:
        body = {
            "knowledge_base_name": self.kb,
            "import_id": self.import_id,
            "shard": self.shard,
            "shard_count": self.shard_count,
            "phase": phase,
            "attempt": self.attempt,
            "embed_model": self.embed_model,
            **extra,
        }
        return self.post("/knowledge_base/import_shard", body)

    def start(self, listed: int) -> int:
        self.attempt = int(self._shard("start", listed=listed)["attempt"])
        return self.attempt

    def fingerprints(self, file_names: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(file_names), 2000):
            found.update(self.check(file_names[start : start + 2000])["fingerprints"])
        return found

    def store(self, files: list[EmbeddedFile], outcomes: list[FileOutcome]) -> None:
        by_name = {o.file_name: o for o in outcomes if o.status == "stored"}
        self._shard(
            "files",
            files=[
                {
                    "path": by_name[f.record.file_name].path,
                    "file_name": f.record.file_name,
                    "fingerprint": f.record.fingerprint,
                    "size": f.record.size,
                    "chunks": f.chunks,
                    "vectors": encode_vectors(f.vectors),
                }
                for f in files
            ],
            outcomes=[
                {"path": o.path, "file_name": o.file_name, "status": o.status, "reason": o.reason}
                for o in outcomes
                if o.status != "stored"
            ],
        )

    def finish(self) -> None:
        self._shard("done")

    def close(self) -> None:
        self.http.close()


def retrying(what: str, fn: Any, *args: Any, tries: int = 6, first_wait_s: float = 1.0) -> Any:
    """Call `fn`, waiting and trying again while its store is unavailable (1, 2, 4... s);
    the last failure is raised: the pod exits non-zero and Kubernetes retries it."""
    wait = first_wait_s
    for attempt in range(1, tries + 1):
        try:
            return fn(*args)
        except Unavailable:
            if attempt == tries:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 30.0)
    raise AssertionError(what)
