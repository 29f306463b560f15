"""Vectors in PostgreSQL: pgvector (vector + HNSW) or AnalyticDB (real[] + FastANN index).

The dialect is detected from the server: ADB exposes the `ann` access method.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
from psycopg import Connection, sql
from psycopg_pool import ConnectionPool

from chat_server.stores.base import MetaStore, validate_kb_name

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
    return f"chat_vec_{validate_kb_name(kb).lower()}"


@dataclass(frozen=True)
class PgSql:
    """The statements of one dialect; pure functions of the KB name, so they are unit-testable."""

    dialect: Dialect
    dim: int

    def create_table(self, kb: str) -> list[sql.Composed]:
        table = sql.Identifier(table_name(kb))
        index = sql.Identifier(table_name(kb) + "_ann")
        if self.dialect == "pgvector":
            return [
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id BIGINT PRIMARY KEY, embedding vector({}))"
                ).format(table, sql.Literal(self.dim)),
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_l2_ops)"
                ).format(index, table),
            ]
        return [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id BIGINT PRIMARY KEY, embedding real[] NOT NULL)"
            ).format(table),
            sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(table),
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING ann(embedding) "
                "WITH (dim={}, distancemeasure=L2, hnsw_m=64, pq_enable=0)"
            ).format(index, table, sql.Literal(self.dim)),
        ]

    def insert(self, kb: str) -> sql.Composed:
        cast = "vector" if self.dialect == "pgvector" else "real[]"
        return sql.SQL(
            "INSERT INTO {} (id, embedding) VALUES (%s, %s::{}) "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
        ).format(sql.Identifier(table_name(kb)), sql.SQL(cast))

    def search(self, kb: str) -> sql.Composed:
        cast = "vector" if self.dialect == "pgvector" else "real[]"
        return sql.SQL(
            "SELECT id, embedding <-> %s::{cast} AS distance FROM {table} "
            "ORDER BY embedding <-> %s::{cast} LIMIT %s"
        ).format(cast=sql.SQL(cast), table=sql.Identifier(table_name(kb)))

    def delete(self, kb: str) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table_name(kb)))

    def drop(self, kb: str) -> sql.Composed:
        return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table_name(kb)))

    def count(self, kb: str) -> sql.Composed:
        return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table_name(kb)))


def vector_literal(dialect: Dialect, vector: np.ndarray) -> str:
    body = ",".join(f"{x:.7g}" for x in vector.tolist())
    return f"[{body}]" if dialect == "pgvector" else f"{{{body}}}"


class PgDatabase:
    """A connection pool plus the detected dialect; one per process."""

    def __init__(self, conninfo: str, dim: int, max_size: int = 16) -> None:
        self.pool = ConnectionPool(conninfo, min_size=1, max_size=max_size, open=True)
        with self.pool.connection() as conn:
            self.dialect: Dialect = detect_dialect(conn)
            if self.dialect == "pgvector":
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self.sql = PgSql(self.dialect, dim)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def meta(self) -> MetaStore:
        return MetaStore(self.connect, "%s")

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

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        rows = [
            (int(i), vector_literal(self.db.dialect, v)) for i, v in zip(ids, vectors, strict=True)
        ]
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.executemany(self.db.sql.insert(self.kb), rows)

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

    def bulk(self) -> AbstractContextManager[None]:
        return nullcontext()

    def count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(self.db.sql.count(self.kb)).fetchone()[0])

    def drop(self) -> None:
        with self.db.connect() as conn:
            conn.execute(self.db.sql.drop(self.kb))
