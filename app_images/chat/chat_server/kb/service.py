"""Knowledge-base operations: create, ingest (incremental, batched), search, delete."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chat_server.errors import ServiceError, StoreUnavailable
from chat_server.kb.embeddings import Embedder
from chat_server.kb.loaders import DocumentError, load_text, validate_file_name
from chat_server.kb.splitter import split_text
from chat_server.stores.base import (
    FileRecord,
    KnowledgeBase,
    MetaStore,
    VectorIndex,
    validate_kb_name,
)
from chat_server.stores.faiss_store import FaissIndex, sqlite_meta

log = logging.getLogger(__name__)
VS_TYPES = ("faiss", "adb", "pg")


class KnowledgeBaseError(ServiceError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


@dataclass(frozen=True)
class SplitParams:
    chunk_size: int = 250
    chunk_overlap: int = 50
    zh_title_enhance: bool = False

    def validate(self) -> SplitParams:
        if not 10 <= self.chunk_size <= 10000:
            raise KnowledgeBaseError(400, f"chunk_size={self.chunk_size} must be in 10..10000")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise KnowledgeBaseError(
                400, f"chunk_overlap={self.chunk_overlap} must be in 0..chunk_size-1"
            )
        return self


@dataclass(frozen=True)
class IncomingFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class SearchHit:
    id: int
    file_name: str
    content: str
    score: float


@dataclass
class IngestReport:
    embedded_files: list[str]
    unchanged_files: list[str]
    chunks: int


def fingerprint(data: bytes, params: SplitParams) -> str:
    digest = hashlib.sha256(data)
    digest.update(f"|{params.chunk_size}|{params.chunk_overlap}|{params.zh_title_enhance}".encode())
    return digest.hexdigest()


class KnowledgeService:
    def __init__(
        self,
        embedder: Embedder,
        kb_root: Path,
        pg_conninfo: str | None = None,
        default_vs_type: str = "faiss",
    ) -> None:
        self.embedder = embedder
        self.kb_root = kb_root
        kb_root.mkdir(parents=True, exist_ok=True)
        self.default_vs_type = default_vs_type
        self._faiss_meta = sqlite_meta(kb_root)
        self._pg = None
        self._pg_meta: MetaStore | None = None
        if pg_conninfo:
            from chat_server.stores.pg_store import PgDatabase

            self._pg = PgDatabase(pg_conninfo, embedder.dim)
            self._pg_meta = self._pg.meta()
        self._indexes: dict[str, VectorIndex] = {}
        self._kb_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- knowledge bases -------------------------------------------------------------------
    def _meta_for(self, vs_type: str) -> MetaStore:
        if vs_type == "faiss":
            return self._faiss_meta
        if self._pg_meta is None:
            raise KnowledgeBaseError(
                400, f"vector_store_type={vs_type!r} needs PG_HOST (ADB/PostgreSQL) configured"
            )
        return self._pg_meta

    def _metas(self) -> list[MetaStore]:
        return [m for m in (self._faiss_meta, self._pg_meta) if m is not None]

    def list_kbs(self) -> list[KnowledgeBase]:
        kbs = [kb for meta in self._metas() for kb in meta.list_kbs()]
        return sorted(kbs, key=lambda kb: kb.name)

    def get_kb(self, name: str) -> tuple[KnowledgeBase, MetaStore]:
        try:
            validate_kb_name(name)
        except ValueError as exc:
            raise KnowledgeBaseError(400, str(exc)) from exc
        for meta in self._metas():
            kb = meta.get_kb(name)
            if kb is not None:
                return kb, meta
        raise KnowledgeBaseError(404, f"knowledge base {name!r} not found")

    def create_kb(self, name: str, vs_type: str | None, embed_model: str | None) -> KnowledgeBase:
        try:
            validate_kb_name(name)
        except ValueError as exc:
            raise KnowledgeBaseError(400, str(exc)) from exc
        vs_type = (vs_type or self.default_vs_type).lower()
        if vs_type not in VS_TYPES:
            raise KnowledgeBaseError(
                400, f"vector_store_type={vs_type!r} is not supported; use one of {VS_TYPES}"
            )
        vs_type = "adb" if vs_type == "pg" else vs_type
        if embed_model and embed_model != self.embedder.name:
            # Chatchat clients send their own configured default; one model serves every KB.
            log.warning(
                "embed_model ignored",
                extra={"kb": name, "requested": embed_model, "used": self.embedder.name},
            )
        if any(kb.name.lower() == name.lower() for kb in self.list_kbs()):
            raise KnowledgeBaseError(409, f"knowledge base {name!r} already exists")
        meta = self._meta_for(vs_type)
        kb = KnowledgeBase(name, vs_type, self.embedder.name)
        meta.create_kb(kb)
        self._content_dir(name).mkdir(parents=True, exist_ok=True)
        self._index(kb)
        log.info("knowledge base created", extra={"kb": name, "vs_type": vs_type})
        return kb

    def delete_kb(self, name: str) -> None:
        kb, meta = self.get_kb(name)
        with self._lock_for(name):
            self._index(kb).drop()
            self._indexes.pop(name, None)
            meta.delete_kb(name)
            shutil.rmtree(self.kb_root / name, ignore_errors=True)
        log.info("knowledge base deleted", extra={"kb": name})

    # -- files -----------------------------------------------------------------------------
    def _content_dir(self, kb: str) -> Path:
        return self.kb_root / kb / "content"

    def file_path(self, kb: str, file_name: str) -> Path:
        validate_file_name(file_name)
        self.get_kb(kb)
        path = self._content_dir(kb) / file_name
        if not path.is_file():
            raise KnowledgeBaseError(404, f"file {file_name!r} not found in knowledge base {kb!r}")
        return path

    def list_files(self, kb: str) -> list[FileRecord]:
        _, meta = self.get_kb(kb)
        return meta.list_files(kb)

    def _lock_for(self, kb: str) -> threading.Lock:
        with self._guard:
            return self._kb_locks.setdefault(kb, threading.Lock())

    def _index(self, kb: KnowledgeBase) -> VectorIndex:
        with self._guard:
            index = self._indexes.get(kb.name)
            if index is None:
                if kb.vs_type == "faiss":
                    index = FaissIndex(self.kb_root / kb.name / "vector_store", self.embedder.dim)
                else:
                    assert self._pg is not None
                    index = self._pg.index(kb.name)
                self._indexes[kb.name] = index
            return index

    def _write_content(self, kb: str, name: str, data: bytes) -> None:
        directory = self._content_dir(kb)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, directory / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def ingest(
        self,
        kb_name: str,
        files: list[IncomingFile],
        params: SplitParams,
        override: bool = True,
        to_vector_store: bool = True,
    ) -> IngestReport:
        """Validate every file first (nothing is written if one is bad), then embed in one batch."""
        kb, meta = self.get_kb(kb_name)
        params.validate()
        prepared: list[tuple[IncomingFile, str, list[str]]] = []
        unchanged: list[str] = []
        seen: set[str] = set()
        for f in files:
            validate_file_name(f.name)
            if f.name in seen:
                raise DocumentError(400, f"file {f.name!r} is given twice")
            seen.add(f.name)
            text = load_text(f.name, f.data)
            fp = fingerprint(f.data, params)
            existing = meta.get_file(kb_name, f.name)
            if existing is not None and existing.fingerprint == fp:
                unchanged.append(f.name)
                continue
            if existing is not None and not override:
                raise DocumentError(
                    409, f"file {f.name!r} already exists with other content; set override=true"
                )
            chunks = split_text(
                text, params.chunk_size, params.chunk_overlap, params.zh_title_enhance
            )
            if not chunks:
                raise DocumentError(400, f"file {f.name!r} produced no text chunks")
            prepared.append((f, fp, chunks))
        if not to_vector_store:
            for f, _, _ in prepared:
                self._write_content(kb_name, f.name, f.data)
            return IngestReport([], unchanged, 0)
        if not prepared:
            return IngestReport([], unchanged, 0)
        all_chunks = [c for _, _, chunks in prepared for c in chunks]
        vectors = self.embedder.encode(all_chunks)
        index = self._index(kb)
        total = 0
        with self._lock_for(kb_name), index.bulk():
            # Vectors first, then metadata in one transaction, then old vectors out: a crash in
            # between leaves only vectors without metadata, which search ignores.
            all_ids = meta.reserve_ids(kb_name, len(all_chunks))
            old_ids = [i for f, _, _ in prepared for i in meta.chunk_ids(kb_name, f.name)]
            index.add(all_ids, vectors)
            entries = []
            offset = 0
            for f, fp, chunks in prepared:
                record = FileRecord(f.name, fp, len(f.data), len(chunks))
                entries.append((record, all_ids[offset : offset + len(chunks)], chunks))
                offset += len(chunks)
            meta.replace_files(kb_name, entries)
            index.delete(old_ids)
            for f, _, _ in prepared:
                self._write_content(kb_name, f.name, f.data)
            total = len(all_chunks)
        log.info(
            "ingested",
            extra={
                "kb": kb_name,
                "files": len(prepared),
                "unchanged": len(unchanged),
                "chunks": total,
            },
        )
        return IngestReport([f.name for f, _, _ in prepared], unchanged, total)

    def delete_files(self, kb_name: str, file_names: list[str], delete_content: bool) -> None:
        kb, meta = self.get_kb(kb_name)
        for name in file_names:
            validate_file_name(name)
            if meta.get_file(kb_name, name) is None:
                raise KnowledgeBaseError(
                    404, f"file {name!r} not found in knowledge base {kb_name!r}"
                )
        index = self._index(kb)
        with self._lock_for(kb_name):
            for name in file_names:
                index.delete(meta.chunk_ids(kb_name, name))
                meta.delete_file(kb_name, name)
                if delete_content:
                    (self._content_dir(kb_name) / name).unlink(missing_ok=True)

    def stored_files(self, kb_name: str) -> list[str]:
        self.get_kb(kb_name)
        directory = self._content_dir(kb_name)
        if not directory.is_dir():
            return []
        return sorted(
            p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def reingest_stored(
        self, kb_name: str, file_names: list[str], params: SplitParams
    ) -> Iterator[tuple[str, IngestReport]]:
        for name in file_names:
            path = self.file_path(kb_name, name)
            yield name, self.ingest(kb_name, [IncomingFile(name, path.read_bytes())], params)

    def reset_vectors(self, kb_name: str) -> None:
        """Drop every vector and chunk of a KB but keep its files (for recreate_vector_store)."""
        kb, meta = self.get_kb(kb_name)
        with self._lock_for(kb_name):
            index = self._index(kb)
            index.drop()
            self._indexes.pop(kb_name, None)
            for record in meta.list_files(kb_name):
                meta.delete_file(kb_name, record.file_name)
        self._index(kb)

    # -- search ----------------------------------------------------------------------------
    def search(
        self, kb_name: str, query: str, top_k: int, score_threshold: float
    ) -> list[SearchHit]:
        kb, meta = self.get_kb(kb_name)
        if not query.strip():
            return []
        vector = self.embedder.encode([query])[0]
        return self.search_vector(kb, meta, vector, top_k, score_threshold)

    def search_vector(
        self,
        kb: KnowledgeBase,
        meta: MetaStore,
        vector: np.ndarray,
        top_k: int,
        score_threshold: float,
    ) -> list[SearchHit]:
        found = self._index(kb).search(vector, top_k)
        found = [(i, d) for i, d in found if d <= score_threshold]
        chunks = meta.get_chunks(kb.name, [i for i, _ in found])
        return [
            SearchHit(i, chunks[i].file_name, chunks[i].content, d)
            for i, d in found
            if i in chunks  # vectors whose metadata write never committed are ignored
        ]

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()

    # -- readiness (read by the API's /ready) ---------------------------------------------
    @property
    def has_database(self) -> bool:
        return self._pg is not None

    def ping_database(self) -> None:
        """Raise StoreUnavailable unless PostgreSQL answers a query within two seconds."""
        if self._pg is None:
            return
        import psycopg
        import psycopg_pool

        try:
            with self._pg.pool.connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(f"the knowledge-base database is unavailable: {exc}") from exc
