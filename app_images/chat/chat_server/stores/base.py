"""The vector-store interface and the knowledge-base metadata store shared by all backends."""

from __future__ import annotations

import hashlib
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from chat_server.errors import ServiceError, StoreUnavailable

# Test-only fault injection: CHAT_FAULT_PAUSE_AT=<step>[#<n>][,...] makes the process write its
# pid to CHAT_FAULT_MARKER at that step (the n-th time it passes there) and wait until the marker
# is removed, so that a test can SIGKILL it, or break the database, right there. Inert when unset.
FAULT_PAUSE_ENV = "CHAT_FAULT_PAUSE_AT"
FAULT_MARKER_ENV = "CHAT_FAULT_MARKER"
_fault_hits: dict[str, int] = {}


def fault_point(step: str) -> None:
    wanted = os.environ.get(FAULT_PAUSE_ENV)
    if not wanted:
        return
    hit = _fault_hits[step] = _fault_hits.get(step, 0) + 1
    steps = wanted.split(",")
    if step not in steps and f"{step}#{hit}" not in steps:
        return
    marker = Path(os.environ[FAULT_MARKER_ENV])
    marker.write_text(f"{os.getpid()} {step}#{hit}\n")
    ends = time.monotonic() + 120  # bounded: the test acts long before this
    while marker.exists() and time.monotonic() < ends:
        time.sleep(0.02)


class KnowledgeBaseError(ServiceError):
    """A knowledge-base request that cannot be served: an HTTP status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


class KnowledgeBaseLocked(KnowledgeBaseError):
    """Another live process is the writer of the faiss knowledge bases on this volume."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class DatabaseUnavailable(StoreUnavailable):
    """ADB/PostgreSQL cannot be reached (down or restarting): 503, retry after `retry_after_s`."""


# Knowledge-base names are display names: any Unicode a Chatchat 0.2 user typed (its server
# refuses only names containing "../", `server/knowledge_base/utils.py` `validate_kb_name`).
# Directories and table names come from `kb_storage_id`, never from the name itself.
KB_NAME_MAX = 100
# Names of the first layout (identifiers) keep their own name as storage id, so that their
# existing directories and tables stay where they are; derived ids contain "-", which no such
# name does, so the two kinds never meet.
_LEGACY_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
# Control, surrogate and line/paragraph-separator characters have no place in a name.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


class KnowledgeBaseNameError(ValueError):
    pass


def validate_kb_name(name: object) -> str:
    """The name, NFC-normalised (two names that normalise equal are one KB), or raise."""
    if not isinstance(name, str):
        raise KnowledgeBaseNameError(f"knowledge base name {name!r} is invalid: it must be text")
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise KnowledgeBaseNameError(
            f"knowledge base name {name!r} is invalid: it must not be empty or only whitespace"
        )
    if len(name) > KB_NAME_MAX:
        raise KnowledgeBaseNameError(
            f"knowledge base name {name[:20]!r}... is invalid: it has {len(name)} characters, "
            f"at most {KB_NAME_MAX} are allowed"
        )
    bad = [c for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES]
    if bad:
        raise KnowledgeBaseNameError(
            f"knowledge base name {name!r} is invalid: it must not contain control characters "
            f"(found {bad[0]!r})"
        )
    if "/" in name or "\\" in name or name in (".", ".."):
        raise KnowledgeBaseNameError(
            f"knowledge base name {name!r} is invalid: it must not contain a path separator "
            "('/' or '\\') nor be '.' or '..'"
        )
    return name


def kb_storage_id(name: str) -> str:
    """The stable id of a KB's directory and table: the name itself for identifier names (the
    first layout), else "kb-" and a hash of the NFC-normalised name."""
    name = validate_kb_name(name)
    if _LEGACY_ID.fullmatch(name):
        return name
    return "kb-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:20]


class VectorIndex(Protocol):
    """Vectors of one knowledge base, keyed by integer chunk id."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def delete(self, ids: list[int]) -> None: ...

    def search(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """Nearest chunk ids with their L2 distance between unit vectors (0 = identical)."""
        ...

    def distances(self, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
        """The same L2 distance for given chunk ids (those found by keywords); ids without a
        vector are left out."""
        ...

    def count(self) -> int: ...

    def stored_dim(self) -> int | None:
        """The dimension the index stores vectors at; None while nothing fixes one."""
        ...

    def drop(self) -> None: ...

    def bulk(self) -> AbstractContextManager[None]:
        """Group several changes: one transaction (PostgreSQL) or one writer turn (faiss)."""
        ...

    def flush(self) -> None:
        """Make the changes so far durable before the metadata names them (faiss: save)."""
        ...


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    vs_type: str
    embed_model: str


@dataclass(frozen=True)
class FileRecord:
    file_name: str
    fingerprint: str
    size: int
    chunks: int


@dataclass(frozen=True)
class Chunk:
    id: int
    file_name: str
    content: str


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS chat_kb (
        name TEXT PRIMARY KEY, vs_type TEXT NOT NULL, embed_model TEXT NOT NULL,
        next_chunk_id BIGINT NOT NULL DEFAULT 1)""",
    """CREATE TABLE IF NOT EXISTS chat_file (
        kb TEXT NOT NULL, file_name TEXT NOT NULL, fingerprint TEXT NOT NULL,
        size BIGINT NOT NULL, chunks INTEGER NOT NULL, PRIMARY KEY (kb, file_name))""",
    """CREATE TABLE IF NOT EXISTS chat_chunk (
        kb TEXT NOT NULL, id BIGINT NOT NULL, file_name TEXT NOT NULL, content TEXT NOT NULL,
        PRIMARY KEY (kb, id))""",
    # Beside chat_kb rather than a new column: no migration of existing databases (ADB 6.0 has
    # no ADD COLUMN IF NOT EXISTS). Chatchat 0.2's `kb_info`, set by /knowledge_base/update_info.
    """CREATE TABLE IF NOT EXISTS chat_kb_info (name TEXT PRIMARY KEY, kb_info TEXT NOT NULL)""",
    # /chat/feedback, as 0.2 stored it (message id, score 0..100, reason), with the time.
    """CREATE TABLE IF NOT EXISTS chat_feedback (
        message_id TEXT NOT NULL, score INTEGER NOT NULL, reason TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
]
# CREATE INDEX IF NOT EXISTS is PostgreSQL 9.5+; ADB 6.0 (Greenplum 6) is 9.4: check the catalog.
SCHEMA_INDEXES = {
    "chat_chunk_by_file": "CREATE INDEX chat_chunk_by_file ON chat_chunk (kb, file_name)"
}
INDEX_EXISTS = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
    "postgres": (
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = ? AND n.nspname = current_schema()"
    ),
}


class SqlStore:
    """A store of tables in SQLite or PostgreSQL: statements use `?`, replaced by the driver's
    placeholder; the schema (`SCHEMA` of the subclass) is made on first use, so that a database
    that is down does not stop start-up."""

    SCHEMA: list[str] = []

    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], placeholder: str):
        self._raw_connect = connect
        self._ph = placeholder
        self._schema_ready = False

    def _make_schema(self, conn: Any) -> None:
        for statement in self.SCHEMA:
            conn.execute(statement)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._raw_connect() as conn:
            if not self._schema_ready:
                self._make_schema(conn)
                self._schema_ready = True
            yield conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._ph)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement in a connection of its own; its rows (none for a write)."""
        with self._connect() as conn:
            cur = conn.execute(self._sql(sql), params)
            return list(cur.fetchall()) if cur.description else []


class MetaStore(SqlStore):
    """Knowledge bases, their files (with content fingerprints) and chunk texts, in SQL.

    One implementation for SQLite (faiss) and PostgreSQL (adb): only the placeholder differs.
    """

    SCHEMA = SCHEMA

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[Any]],
        placeholder: str,
        dialect: Literal["sqlite", "postgres"] = "sqlite",
    ) -> None:
        super().__init__(connect, placeholder)
        self._dialect = dialect

    def _make_schema(self, conn: Any) -> None:
        super()._make_schema(conn)
        for name, create in SCHEMA_INDEXES.items():
            exists = conn.execute(self._sql(INDEX_EXISTS[self._dialect]), (name,))
            if exists.fetchone() is None:
                conn.execute(create)

    def transaction(self) -> AbstractContextManager[Any]:
        return self._connect()

    def list_kbs(self) -> list[KnowledgeBase]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, vs_type, embed_model FROM chat_kb ORDER BY name")
            return [KnowledgeBase(*row) for row in rows.fetchall()]

    def get_kb(self, name: str) -> KnowledgeBase | None:
        with self._connect() as conn:
            row = conn.execute(
                self._sql("SELECT name, vs_type, embed_model FROM chat_kb WHERE name = ?"),
                (name,),
            ).fetchone()
        return KnowledgeBase(*row) if row else None

    def create_kb(self, kb: KnowledgeBase) -> None:
        with self._connect() as conn:
            conn.execute(
                self._sql("INSERT INTO chat_kb (name, vs_type, embed_model) VALUES (?, ?, ?)"),
                (kb.name, kb.vs_type, kb.embed_model),
            )

    def set_embed_model(self, name: str, embed_model: str) -> None:
        """Record which model made the KB's vectors (a rebuild re-embedded all of them)."""
        with self._connect() as conn:
            conn.execute(
                self._sql("UPDATE chat_kb SET embed_model = ? WHERE name = ?"), (embed_model, name)
            )

    def delete_kb(self, name: str) -> None:
        with self._connect() as conn:
            for table, column in (
                ("chat_chunk", "kb"),
                ("chat_file", "kb"),
                ("chat_kb_info", "name"),
                ("chat_kb", "name"),
            ):
                conn.execute(self._sql(f"DELETE FROM {table} WHERE {column} = ?"), (name,))

    def _files_where(self, kb: str, name_contains: str | None) -> tuple[str, list[Any]]:
        """The filter of a file listing: the KB's files, those whose name contains
        `name_contains` (case-insensitive: ILIKE on PostgreSQL, whose LIKE is case-sensitive;
        SQLite's LIKE ignores ASCII case), `%` and `_` in it matched as themselves."""
        if not name_contains:
            return "WHERE kb = ?", [kb]
        pattern = "%" + name_contains.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        like = "ILIKE" if self._dialect == "postgres" else "LIKE"
        return f"WHERE kb = ? AND file_name {like} ? ESCAPE '!'", [kb, pattern + "%"]

    def list_files(
        self,
        kb: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        name_contains: str | None = None,
    ) -> list[FileRecord]:
        """The KB's files by name; `limit` from `offset` of them (all when None), of those
        whose name contains `name_contains`."""
        where, params = self._files_where(kb, name_contains)
        page = ""
        if limit is not None:
            page, params = " LIMIT ? OFFSET ?", [*params, limit, offset]
        with self._connect() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT file_name, fingerprint, size, chunks FROM chat_file "
                    f"{where} ORDER BY file_name{page}"
                ),
                tuple(params),
            ).fetchall()
        return [FileRecord(*row) for row in rows]

    def count_files(self, kb: str, name_contains: str | None = None) -> int:
        where, params = self._files_where(kb, name_contains)
        with self._connect() as conn:
            row = conn.execute(
                self._sql(f"SELECT count(*) FROM chat_file {where}"), tuple(params)
            ).fetchone()
        return int(row[0])

    def get_file(self, kb: str, file_name: str) -> FileRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                self._sql(
                    "SELECT file_name, fingerprint, size, chunks FROM chat_file "
                    "WHERE kb = ? AND file_name = ?"
                ),
                (kb, file_name),
            ).fetchone()
        return FileRecord(*row) if row else None

    def chunk_ids(self, kb: str, file_name: str) -> list[int]:
        with self._connect() as conn:
            rows = conn.execute(
                self._sql("SELECT id FROM chat_chunk WHERE kb = ? AND file_name = ?"),
                (kb, file_name),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def reserve_ids(self, kb: str, n: int) -> np.ndarray:
        with self._connect() as conn:
            # UPDATE first: it takes the row lock, so concurrent writers never get the same ids.
            conn.execute(
                self._sql("UPDATE chat_kb SET next_chunk_id = next_chunk_id + ? WHERE name = ?"),
                (n, kb),
            )
            row = conn.execute(
                self._sql("SELECT next_chunk_id FROM chat_kb WHERE name = ?"), (kb,)
            ).fetchone()
            end = int(row[0])
        return np.arange(end - n, end, dtype=np.int64)

    def replace_files(
        self, kb: str, entries: list[tuple[FileRecord, np.ndarray, list[str]]]
    ) -> None:
        """Swap in the new chunks of several files in one transaction."""
        with self._connect() as conn:
            for record, ids, chunks in entries:
                for table in ("chat_chunk", "chat_file"):
                    conn.execute(
                        self._sql(f"DELETE FROM {table} WHERE kb = ? AND file_name = ?"),
                        (kb, record.file_name),
                    )
                conn.execute(
                    self._sql(
                        "INSERT INTO chat_file (kb, file_name, fingerprint, size, chunks) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    (kb, record.file_name, record.fingerprint, record.size, record.chunks),
                )
                self.insert_chunks(
                    conn,
                    [(kb, int(i), record.file_name, c) for i, c in zip(ids, chunks, strict=True)],
                )

    def insert_chunks(self, conn: Any, rows: list[tuple[str, int, str, str]]) -> None:
        """(kb, id, file_name, content) rows into chat_chunk: one COPY on PostgreSQL."""
        if self._dialect == "postgres":
            with (
                conn.cursor() as cur,
                cur.copy("COPY chat_chunk (kb, id, file_name, content) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        conn.cursor().executemany(
            self._sql("INSERT INTO chat_chunk (kb, id, file_name, content) VALUES (?, ?, ?, ?)"),
            rows,
        )

    def replace_file(self, kb: str, record: FileRecord, ids: np.ndarray, chunks: list[str]) -> None:
        self.replace_files(kb, [(record, ids, chunks)])

    def delete_file(self, kb: str, file_name: str) -> None:
        self.delete_files(kb, [file_name])

    def delete_files(self, kb: str, file_names: list[str]) -> None:
        """Forget several files and their chunks in one transaction."""
        with self._connect() as conn:
            for file_name in file_names:
                for table in ("chat_chunk", "chat_file"):
                    conn.execute(
                        self._sql(f"DELETE FROM {table} WHERE kb = ? AND file_name = ?"),
                        (kb, file_name),
                    )

    def chunk_ids_by_file(self, kb: str) -> dict[str, list[int]]:
        with self._connect() as conn:
            rows = conn.execute(
                self._sql("SELECT file_name, id FROM chat_chunk WHERE kb = ?"), (kb,)
            ).fetchall()
        by_file: dict[str, list[int]] = {}
        for file_name, chunk_id in rows:
            by_file.setdefault(file_name, []).append(int(chunk_id))
        return by_file

    def get_chunks(self, kb: str, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self._connect() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT id, file_name, content FROM chat_chunk "
                    f"WHERE kb = ? AND id IN ({marks})"
                ),
                (kb, *[int(i) for i in ids]),
            ).fetchall()
        return {int(r[0]): Chunk(int(r[0]), r[1], r[2]) for r in rows}

    def chunk_signature(self, kb: str) -> tuple[int, int]:
        """(count, largest id) of a KB's chunks: ids are fresh on every write and never reused
        while the KB lives, so any insert or delete changes it (the keyword index's key)."""
        with self._connect() as conn:
            row = conn.execute(
                self._sql("SELECT count(*), max(id) FROM chat_chunk WHERE kb = ?"), (kb,)
            ).fetchone()
        return (int(row[0]), int(row[1] or 0))

    def chunk_texts(self, kb: str, ids: list[int], batch: int = 500) -> dict[int, str]:
        """Chunk texts by id, fetched in batches (SQLite caps the parameters of one query)."""
        texts: dict[int, str] = {}
        for start in range(0, len(ids), batch):
            texts.update(
                (i, c.content) for i, c in self.get_chunks(kb, ids[start : start + batch]).items()
            )
        return texts

    def iter_all_chunk_ids(self, kb: str) -> Iterator[int]:
        with self._connect() as conn:
            rows = conn.execute(
                self._sql("SELECT id FROM chat_chunk WHERE kb = ?"), (kb,)
            ).fetchall()
        return iter(int(r[0]) for r in rows)

    def file_chunks(self, kb: str, file_name: str) -> list[Chunk]:
        """A file's chunks in the order they were stored (ids grow with the text)."""
        with self._connect() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT id, file_name, content FROM chat_chunk "
                    "WHERE kb = ? AND file_name = ? ORDER BY id"
                ),
                (kb, file_name),
            ).fetchall()
        return [Chunk(int(r[0]), r[1], r[2]) for r in rows]

    def get_kb_info(self, name: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(
                self._sql("SELECT kb_info FROM chat_kb_info WHERE name = ?"), (name,)
            ).fetchone()
        return row[0] if row else None

    def set_kb_info(self, name: str, kb_info: str) -> None:
        with self._connect() as conn:
            conn.execute(self._sql("DELETE FROM chat_kb_info WHERE name = ?"), (name,))
            conn.execute(
                self._sql("INSERT INTO chat_kb_info (name, kb_info) VALUES (?, ?)"),
                (name, kb_info),
            )

    def add_feedback(self, message_id: str, score: int, reason: str, created_at: str) -> None:
        with self._connect() as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO chat_feedback (message_id, score, reason, created_at) "
                    "VALUES (?, ?, ?, ?)"
                ),
                (message_id, score, reason, created_at),
            )

    def list_feedback(self, message_id: str) -> list[tuple[str, int, str, str]]:
        with self._connect() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT message_id, score, reason, created_at FROM chat_feedback "
                    "WHERE message_id = ? ORDER BY created_at"
                ),
                (message_id,),
            ).fetchall()
        return [(r[0], int(r[1]), r[2], r[3]) for r in rows]
