"""Vectors in PostgreSQL: pgvector (vector + HNSW) or AnalyticDB (real[] + FastANN index).

The dialect is detected from the server: ADB exposes the `ann` access method.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import numpy as np
from psycopg import Connection, OperationalError, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from chat_server.stores.base import DatabaseUnavailable, MetaStore, kb_storage_id

log = logging.getLogger(__name__)

Dialect = Literal["pgvector", "adb"]


def detect_dialect(conn: Connection) -> Dialect:
    if conn.execute("SELECT 1 FROM pg_am WHERE amname = 'ann'").fetchone():
        return "adb"
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
        return "pgvector"
    raise RuntimeError(
        "the PostgreSQL server has neither the AnalyticDB FastANN access method (ann) "
        "nor the pgvector extension; cannot store vectors there"
    )


def table_name(kb: str) -> str:
    """The vector table of a KB, from its storage id (never the display name itself)."""
    return f"chat_vec_{kb_storage_id(kb).lower()}"


def index_exists(conn: Connection, name: str) -> bool:
    """A catalog check: `CREATE INDEX IF NOT EXISTS` is PostgreSQL 9.5+, ADB 6.0 is 9.4."""
    return (
        conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = current_schema()",
            (name,),
        ).fetchone()
        is not None
    )


@dataclass(frozen=True)
class PgSql:
    """The statements of one dialect; pure functions of the KB name, so they are unit-testable.

    Table and index names come from `table_name` (the storage id) through `sql.Identifier`.

    Only PostgreSQL 9.4 grammar (ADB for PostgreSQL 6.0 is Greenplum 6 on PostgreSQL 9.4):
    no `CREATE INDEX IF NOT EXISTS`, no `ON CONFLICT`, no `ADD COLUMN IF NOT EXISTS`.
    """

    dialect: Dialect
    dim: int

    def index_name(self, kb: str) -> str:
        return table_name(kb) + "_ann"

    def create_table(self, kb: str) -> list[sql.Composed]:
        table = sql.Identifier(table_name(kb))
        if self.dialect == "pgvector":
            return [
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id BIGINT PRIMARY KEY, embedding vector({}))"
                ).format(table, sql.Literal(self.dim)),
            ]
        return [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id BIGINT PRIMARY KEY, embedding real[] NOT NULL)"
            ).format(table),
            sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(table),
        ]

    def create_index(self, kb: str) -> sql.Composed:
        """Run only where `index_exists` says the index is missing."""
        table = sql.Identifier(table_name(kb))
        index = sql.Identifier(self.index_name(kb))
        if self.dialect == "pgvector":
            return sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_l2_ops)").format(
                index, table
            )
        return sql.SQL(
            "CREATE INDEX {} ON {} USING ann(embedding) "
            "WITH (dim={}, distancemeasure=L2, hnsw_m=64, pq_enable=0)"
        ).format(index, table, sql.Literal(self.dim))

    def copy(self, kb: str) -> sql.Composed:
        """Bulk load (ids are reserved fresh for every write: no row is ever there already).
        pgvector takes its binary format; ADB's real[] the text one (`vector_copy_text`)."""
        how = "(FORMAT BINARY)" if self.dialect == "pgvector" else ""
        return sql.SQL("COPY {} (id, embedding) FROM STDIN {}").format(
            sql.Identifier(table_name(kb)), sql.SQL(how)
        )

    def search(self, kb: str) -> sql.Composed:
        cast = "vector" if self.dialect == "pgvector" else "real[]"
        return sql.SQL(
            "SELECT id, embedding <-> %s::{cast} AS distance FROM {table} "
            "ORDER BY embedding <-> %s::{cast} LIMIT %s"
        ).format(cast=sql.SQL(cast), table=sql.Identifier(table_name(kb)))

    def distances(self, kb: str) -> sql.Composed:
        cast = "vector" if self.dialect == "pgvector" else "real[]"
        return sql.SQL(
            "SELECT id, embedding <-> %s::{cast} AS distance FROM {table} WHERE id = ANY(%s)"
        ).format(cast=sql.SQL(cast), table=sql.Identifier(table_name(kb)))

    def delete(self, kb: str) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table_name(kb)))

    def drop(self, kb: str) -> sql.Composed:
        return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table_name(kb)))

    def count(self, kb: str) -> sql.Composed:
        return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table_name(kb)))

    def stored_dim(self, kb: str) -> tuple[str, tuple[str]]:
        """The catalog query for the dimension the KB's vectors are stored at, by dialect:
        pgvector's `vector(n)` column keeps n as the column's type modifier; ADB's `real[]`
        takes any length and the dimension is the ann index's `dim` option (pg_class
        reloptions hold an index's WITH options as 'name=value' strings)."""
        if self.dialect == "pgvector":
            return (
                "SELECT a.atttypmod FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s AND n.nspname = current_schema() "
                "AND a.attname = 'embedding' AND NOT a.attisdropped",
                (table_name(kb),),
            )
        return (
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND n.nspname = current_schema()",
            (self.index_name(kb),),
        )


def parse_stored_dim(dialect: Dialect, value: object) -> int | None:
    """`PgSql.stored_dim`'s answer as a dimension; None where nothing fixes one yet."""
    if dialect == "pgvector":
        return int(value) if isinstance(value, int) and value > 0 else None  # -1: vector
    for option in value if isinstance(value, list) else []:
        key, _, number = str(option).partition("=")
        if key.strip().lower() == "dim" and number.strip().isdigit():
            return int(number)
    return None


def vector_literal(dialect: Dialect, vector: np.ndarray) -> str:
    body = ",".join(f"{x:.7g}" for x in vector.tolist())
    return f"[{body}]" if dialect == "pgvector" else f"{{{body}}}"


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension


def vector_copy_binary(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """A whole `COPY ... (FORMAT BINARY)` stream of (id bigint, embedding vector) rows, built
    at once by numpy: per row 2 fields, an 8-byte id, then pgvector's binary form of a vector
    (dim and a zero as int16, the floats as float4, all big-endian)."""
    n, dim = vectors.shape
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
        ]
    )
    rows = np.zeros(n, dtype=row)
    rows["fields"] = 2
    rows["id_len"] = 8
    rows["id"] = ids
    rows["vec_len"] = 4 + 4 * dim
    rows["dim"] = dim
    rows["values"] = vectors
    return _COPY_SIGNATURE + rows.tobytes() + b"\xff\xff"


def vector_copy_text(dialect: Dialect, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """The same rows in COPY's text format (tab-separated), for ADB's real[] column."""
    lines = (f"{int(i)}\t{vector_literal(dialect, v)}\n" for i, v in zip(ids, vectors, strict=True))
    return "".join(lines).encode()


class PgDatabase:
    """A connection pool plus the detected dialect; one per process.

    Connections are checked before use (a server restart leaves dead ones in the pool); getting
    one is retried once; a server that is still unreachable raises DatabaseUnavailable, and so
    does a connection lost mid-transaction (the server rolls the transaction back). Nothing is
    asked of the server at start-up, so a database that is down does not stop the service.
    Nested `connect()` calls in one thread share the outer transaction: an ingest writes its
    vectors and its metadata in one transaction.
    """

    def __init__(
        self,
        conninfo: str,
        dim: int,
        max_size: int = 16,
        timeout_s: float = 3.0,
        retry_after_s: int = 5,
    ) -> None:
        self.dim = dim
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout_s,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(timeout_s))},
        )
        self.pool.open(wait=False)
        self._dialect: Dialect | None = None
        self._init_lock = threading.Lock()
        self._down_until = 0.0
        self._current: ContextVar[Connection | None] = ContextVar(
            f"pg_txn_{id(self)}", default=None
        )

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        self._down_until = time.monotonic() + self.retry_after_s
        log.warning("database unavailable", extra={"error": str(exc)})
        return DatabaseUnavailable(
            f"the ADB/PostgreSQL database is unavailable ({type(exc).__name__}); "
            f"retry in {self.retry_after_s}s",
            self.retry_after_s,
        )

    def _getconn(self) -> Connection:
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable(
                f"the ADB/PostgreSQL database is unavailable; retry in {self.retry_after_s}s",
                self.retry_after_s,
            )
        last: BaseException | None = None
        for _ in range(2):  # one retry: a restart replaces every pooled connection
            try:
                return self.pool.getconn()
            except (PoolTimeout, OperationalError) as exc:
                last = exc
        assert last is not None
        raise self._unavailable(last)

    def _init(self, conn: Connection) -> None:
        with self._init_lock:
            if self._dialect is None:
                dialect = detect_dialect(conn)
                if dialect == "pgvector":
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                self._dialect = dialect

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            with self.connect():
                pass
        assert self._dialect is not None
        return self._dialect

    @property
    def sql(self) -> PgSql:
        return PgSql(self.dialect, self.dim)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        current = self._current.get()
        if current is not None:
            yield current
            return
        conn = self._getconn()
        token = self._current.set(conn)
        try:
            with conn.transaction():
                if self._dialect is None:
                    self._init(conn)
                yield conn
        except OperationalError as exc:
            raise self._unavailable(exc) from exc
        finally:
            self._current.reset(token)
            self.pool.putconn(conn)

    def ping(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
        except DatabaseUnavailable:
            return False
        return True

    def meta(self) -> MetaStore:
        return MetaStore(self.connect, "%s", "postgres")

    def index(self, kb: str) -> PgIndex:
        return PgIndex(self, kb)

    def close(self) -> None:
        self.pool.close()


class PgIndex:
    def __init__(self, db: PgDatabase, kb: str) -> None:
        self.db = db
        self.kb = kb
        with db.connect() as conn:
            for statement in db.sql.create_table(kb):
                conn.execute(statement)
            if not index_exists(conn, db.sql.index_name(kb)):
                conn.execute(db.sql.create_index(kb))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """One COPY of all the rows (also for a bulk import's precomputed vectors)."""
        if len(ids) == 0:
            return
        dialect = self.db.dialect
        data = (
            vector_copy_binary(ids, vectors)
            if dialect == "pgvector"
            else vector_copy_text(dialect, ids, vectors)
        )
        with (
            self.db.connect() as conn,
            conn.cursor() as cur,
            cur.copy(self.db.sql.copy(self.kb)) as copy,
        ):
            copy.write(data)

    def delete(self, ids: list[int]) -> None:
        if ids:
            with self.db.connect() as conn:
                conn.execute(self.db.sql.delete(self.kb), ([int(i) for i in ids],))

    def search(self, vector: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        literal = vector_literal(self.db.dialect, vector)
        with self.db.connect() as conn:
            if self.db.dialect == "pgvector":
                conn.execute("SET LOCAL hnsw.ef_search = 100")
            rows = conn.execute(self.db.sql.search(self.kb), (literal, literal, top_k)).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def distances(self, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
        if not ids:
            return {}
        literal = vector_literal(self.db.dialect, vector)
        with self.db.connect() as conn:
            rows = conn.execute(
                self.db.sql.distances(self.kb), (literal, [int(i) for i in ids])
            ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """One transaction for everything inside: vectors and metadata commit together."""
        with self.db.connect():
            yield

    def flush(self) -> None:
        return None

    def count(self) -> int:
        with self.db.connect() as conn:
            row = conn.execute(self.db.sql.count(self.kb)).fetchone()
        assert row is not None
        return int(row[0])

    def stored_dim(self) -> int | None:
        query, params = self.db.sql.stored_dim(self.kb)
        with self.db.connect() as conn:
            row = conn.execute(query, params).fetchone()
        return parse_stored_dim(self.db.dialect, row[0] if row else None)

    def drop(self) -> None:
        with self.db.connect() as conn:
            conn.execute(self.db.sql.drop(self.kb))
