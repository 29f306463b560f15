"""Bulk-import progress: one row per shard and one per source file, beside the KB's metadata.

The tables live in the KB's metadata store (SQLite on the KB volume for faiss, PostgreSQL for
adb), so a worker writing to PostgreSQL records a file's outcome in the same transaction as its
chunks and vectors: the status never says "stored" for a file that is not, and never misses one
that is. Rows are replaced by DELETE + INSERT (ADB 6.0 is PostgreSQL 9.4: no ON CONFLICT).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from chat_server.stores.base import SqlStore

FileStatus = Literal["stored", "unchanged", "failed"]
FAILED_FILES_SHOWN = 100

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS chat_import_shard (
        kb TEXT NOT NULL, import_id TEXT NOT NULL, shard INTEGER NOT NULL,
        shard_count INTEGER NOT NULL, listed INTEGER NOT NULL, attempt INTEGER NOT NULL,
        state TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (kb, import_id, shard))""",
    """CREATE TABLE IF NOT EXISTS chat_import_file (
        kb TEXT NOT NULL, import_id TEXT NOT NULL, path TEXT NOT NULL, file_name TEXT NOT NULL,
        shard INTEGER NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,
        reason TEXT NOT NULL, chunks INTEGER NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (kb, import_id, path))""",
]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class FileOutcome:
    """What became of one source file: `path` is relative to the source root, `file_name` the
    name it has in the knowledge base ('' when it has none, e.g. a name that is not allowed)."""

    path: str
    file_name: str
    status: FileStatus
    reason: str = ""
    chunks: int = 0


class ImportStore(SqlStore):
    SCHEMA = SCHEMA

    def ensure_schema(self) -> None:
        with self._connect():
            pass

    def start_shard(
        self, kb: str, import_id: str, shard: int, shard_count: int, listed: int
    ) -> int:
        """Mark a shard running and return its attempt number (1 for the first, durable)."""
        with self._connect() as conn:
            key = (kb, import_id, shard)
            row = conn.execute(
                self._sql(
                    "SELECT attempt, started_at FROM chat_import_shard "
                    "WHERE kb = ? AND import_id = ? AND shard = ?"
                ),
                key,
            ).fetchone()
            attempt = int(row[0]) + 1 if row else 1
            started = row[1] if row else now()
            conn.execute(
                self._sql(
                    "DELETE FROM chat_import_shard WHERE kb = ? AND import_id = ? AND shard = ?"
                ),
                key,
            )
            conn.execute(
                self._sql(
                    "INSERT INTO chat_import_shard (kb, import_id, shard, shard_count, listed, "
                    "attempt, state, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (*key, shard_count, listed, attempt, "running", started, now()),
            )
        return attempt

    def finish_shard(self, kb: str, import_id: str, shard: int) -> None:
        with self._connect() as conn:
            conn.execute(
                self._sql(
                    "UPDATE chat_import_shard SET state = ?, updated_at = ? "
                    "WHERE kb = ? AND import_id = ? AND shard = ?"
                ),
                ("done", now(), kb, import_id, shard),
            )

    def record(
        self, kb: str, import_id: str, shard: int, attempt: int, outcomes: Iterable[FileOutcome]
    ) -> None:
        """Store the outcomes (inside the caller's transaction where there is one). A file an
        earlier attempt of this import stored stays "stored" when a re-run finds it unchanged."""
        outcomes = list(outcomes)
        if not outcomes:
            return
        with self._connect() as conn:
            stored = self._stored_paths(conn, kb, import_id, [o.path for o in outcomes])
            keep = [o for o in outcomes if not (o.status == "unchanged" and o.path in stored)]
            stamp = now()
            for o in keep:
                conn.execute(
                    self._sql(
                        "DELETE FROM chat_import_file WHERE kb = ? AND import_id = ? AND path = ?"
                    ),
                    (kb, import_id, o.path),
                )
            conn.cursor().executemany(
                self._sql(
                    "INSERT INTO chat_import_file (kb, import_id, path, file_name, shard, attempt, "
                    "status, reason, chunks, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        kb,
                        import_id,
                        o.path,
                        o.file_name,
                        shard,
                        attempt,
                        o.status,
                        o.reason,
                        o.chunks,
                        stamp,
                    )
                    for o in keep
                ],
            )

    def _rows_in(
        self, conn: Any, sql: str, params: tuple[Any, ...], values: list[str]
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` (ending in `IN ({marks})`) for `values`, 500 at a time: SQLite caps the
        parameters of one query."""
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            marks = ", ".join("?" for _ in part)
            yield from conn.execute(self._sql(sql.format(marks=marks)), (*params, *part)).fetchall()

    def _stored_paths(self, conn: Any, kb: str, import_id: str, paths: list[str]) -> set[str]:
        sql = (
            "SELECT path FROM chat_import_file WHERE kb = ? AND import_id = ? "
            "AND status = 'stored' AND path IN ({marks})"
        )
        return {r[0] for r in self._rows_in(conn, sql, (kb, import_id), paths)}

    def origins(self, kb: str, file_names: list[str]) -> dict[str, tuple[str, str]]:
        """Where imported files came from: file name -> (import id, path in the source), the
        latest import that stored each (names no import stored are left out)."""
        found: dict[str, tuple[str, str, str]] = {}
        sql = (
            "SELECT file_name, import_id, path, updated_at FROM chat_import_file "
            "WHERE kb = ? AND status = 'stored' AND file_name IN ({marks})"
        )
        with self._connect() as conn:
            for name, import_id, path, updated in self._rows_in(conn, sql, (kb,), file_names):
                if name not in found or updated > found[name][2]:
                    found[name] = (import_id, path, updated)
        return {name: (iid, path) for name, (iid, path, _) in found.items()}

    def forget(self, kb: str) -> None:
        """Drop every import record of a KB (it is deleted, or made anew under its name)."""
        with self._connect() as conn:
            for table in ("chat_import_file", "chat_import_shard"):
                conn.execute(self._sql(f"DELETE FROM {table} WHERE kb = ?"), (kb,))

    def status(self, kb: str, import_id: str | None = None) -> list[dict[str, Any]]:
        """Every import of a KB (or the one asked for), newest first: totals, shards, failures."""
        where, params = "WHERE kb = ?", [kb]
        if import_id is not None:
            where, params = where + " AND import_id = ?", [kb, import_id]
        with self._connect() as conn:
            shards = conn.execute(
                self._sql(
                    "SELECT import_id, shard, shard_count, listed, attempt, state, started_at, "
                    f"updated_at FROM chat_import_shard {where} ORDER BY import_id, shard"
                ),
                tuple(params),
            ).fetchall()
            counts = conn.execute(
                self._sql(
                    "SELECT import_id, shard, status, count(*), sum(chunks) FROM chat_import_file "
                    f"{where} GROUP BY import_id, shard, status"
                ),
                tuple(params),
            ).fetchall()
            failed = conn.execute(
                self._sql(
                    "SELECT import_id, path, file_name, shard, attempt, reason, updated_at "
                    f"FROM chat_import_file {where} AND status = 'failed' "
                    "ORDER BY import_id, path"
                ),
                tuple(params),
            ).fetchall()
        imports: dict[str, dict[str, Any]] = {}
        for iid, shard, shard_count, listed, attempt, state, started, updated in shards:
            entry = imports.setdefault(iid, _empty_import(iid, int(shard_count)))
            entry["shards"].append(
                {
                    "shard": int(shard),
                    "listed": int(listed),
                    "attempt": int(attempt),
                    "state": state,
                    "started_at": started,
                    "updated_at": updated,
                    **{k: 0 for k in ("stored", "unchanged", "failed", "chunks")},
                }
            )
            entry["started_at"] = min(entry["started_at"] or started, started)
            entry["updated_at"] = max(entry["updated_at"] or updated, updated)
        for iid, shard, status, n, chunks in counts:
            counted = imports.get(iid)
            if counted is None:
                continue
            for s in counted["shards"]:
                if s["shard"] == int(shard):
                    s[status] = int(n)
                    s["chunks"] += int(chunks or 0)
        for entry in imports.values():
            shard_rows = entry["shards"]
            for key in ("listed", "stored", "unchanged", "failed", "chunks"):
                entry["totals"][key] = sum(s[key] for s in shard_rows)
            for s in shard_rows:
                s["processed"] = s["stored"] + s["unchanged"] + s["failed"]
            entry["totals"]["processed"] = sum(s["processed"] for s in shard_rows)
            entry["shards_started"] = len(shard_rows)
            entry["done"] = len(shard_rows) == entry["shard_count"] and all(
                s["state"] == "done" for s in shard_rows
            )
        for iid, path, file_name, shard, attempt, reason, updated in failed:
            owner = imports.get(iid)
            if owner is None:
                continue
            if len(owner["failed_files"]) < FAILED_FILES_SHOWN:
                owner["failed_files"].append(
                    {
                        "path": path,
                        "file_name": file_name,
                        "shard": int(shard),
                        "attempt": int(attempt),
                        "reason": reason,
                        "at": updated,
                    }
                )
        return sorted(imports.values(), key=lambda e: e["updated_at"] or "", reverse=True)


def _empty_import(import_id: str, shard_count: int) -> dict[str, Any]:
    return {
        "import_id": import_id,
        "shard_count": shard_count,
        "shards_started": 0,
        "done": False,
        "started_at": None,
        "updated_at": None,
        "totals": {},
        "shards": [],
        "failed_files": [],
        "failed_files_shown": FAILED_FILES_SHOWN,
    }
