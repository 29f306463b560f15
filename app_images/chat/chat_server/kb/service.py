"""Knowledge-base operations: create, ingest (incremental, batched), search, delete."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chat_server import metrics
from chat_server.access.store import AccessStore
from chat_server.kb.embeddings import Embedder, lower_priority
from chat_server.kb.keyword import ChunkSource, KeywordIndexes
from chat_server.kb.loaders import DocumentError, ParseLimits, validate_file_name
from chat_server.kb.parse_pool import ParsePool
from chat_server.kb.pipeline import (
    Embedded,
    EmbedStage,
    IngestProgress,
    IngestTracker,
    PreparedFile,
    ordered_map,
)
from chat_server.kb.retrieval import Reranker, SearchOptions, fuse_rrf
from chat_server.kb.splitter import split_document
from chat_server.kb.spool import IncomingFile, remove_stale_spool_files
from chat_server.stores.base import (
    Chunk,
    DatabaseUnavailable,
    FileRecord,
    KnowledgeBase,
    KnowledgeBaseError,
    KnowledgeBaseLocked,
    MetaStore,
    VectorIndex,
    fault_point,
    kb_storage_id,
    validate_kb_name,
)
from chat_server.stores.faiss_store import FaissIndex, WriterLease, sqlite_connection, sqlite_meta
from chat_server.stores.imports import ImportStore

if TYPE_CHECKING:
    from chat_server.settings import Settings
    from chat_server.stores.pg_store import PgDatabase

__all__ = [
    "DatabaseUnavailable",
    "IncomingFile",
    "KnowledgeBaseError",
    "KnowledgeBaseLocked",
    "KnowledgeService",
]

log = logging.getLogger(__name__)
VS_TYPES = ("faiss", "adb", "pg")
# Fingerprint prefix of a file whose chunks a client gave (0.2's `custom_docs`): update_docs
# keeps them unless `override_custom_docs`; any re-upload replaces them.
CUSTOM_FINGERPRINT = "custom:"
KB_INFO_MAX = 10_000
# Files parsed ahead of the embedder, per parse worker; chunks embedded (and written) together.
PARSE_AHEAD_PER_WORKER = 4
EMBED_WINDOW_CHUNKS = 256


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
class SearchHit:
    id: int
    file_name: str
    content: str
    score: float  # L2 distance of unit vectors (lower is closer), whichever side found it
    # How a keyword, hybrid or reranked search ranked it (None for plain vector search).
    ranking: dict[str, str | int | float] | None = None


@dataclass
class IngestReport:
    embedded_files: list[str]
    unchanged_files: list[str]
    chunks: int
    # Per file, how many chunks were longer than the embedding model's window at the asked
    # chunk_size and were cut to fit (the upload answer says so); `max_tokens` is that window.
    clamped: dict[str, int] = field(default_factory=dict)
    max_tokens: int | None = None


@dataclass(frozen=True)
class FilePage:
    """A part of a KB's file listing, by name: `limit` files (all when None) from `offset`,
    of those whose name contains `name_contains` (case-insensitive)."""

    offset: int = 0
    limit: int | None = None
    name_contains: str | None = None


def _params_suffix(params: SplitParams) -> bytes:
    return f"|{params.chunk_size}|{params.chunk_overlap}|{params.zh_title_enhance}".encode()


def fingerprint(data: bytes, params: SplitParams) -> str:
    digest = hashlib.sha256(data)
    digest.update(_params_suffix(params))
    return digest.hexdigest()


def file_fingerprint(f: IncomingFile, params: SplitParams) -> str:
    """`fingerprint` of a file's bytes, from the hash taken while it was spooled."""
    digest = f.hasher.copy()
    digest.update(_params_suffix(params))
    return str(digest.hexdigest())


def _custom_record(meta: MetaStore, kb: str, name: str, chunks: list[str]) -> FileRecord:
    """The record of a file whose chunks a client gave: fingerprinted by them, its size kept."""
    old = meta.get_file(kb, name)
    digest = hashlib.sha256("\0".join(chunks).encode()).hexdigest()
    return FileRecord(name, CUSTOM_FINGERPRINT + digest, old.size if old else 0, len(chunks))


@dataclass(frozen=True)
class EmbeddedFile:
    """A file parsed, split and embedded elsewhere (a bulk-import worker): stored as it is."""

    record: FileRecord
    chunks: list[str]
    vectors: np.ndarray  # (len(chunks), dim) float32, L2-normalised


class KnowledgeService:
    def __init__(
        self,
        embedder: Embedder,
        kb_root: Path,
        pg_conninfo: str | None = None,
        default_vs_type: str = "faiss",
        *,
        replicas: int = 1,
        parse_limits: ParseLimits | None = None,
        faiss_lease_ttl_s: float = 30.0,
        pg_timeout_s: float = 3.0,
        pg_retry_after_s: int = 5,
        search_options: SearchOptions | None = None,
        reranker: Reranker | None = None,
        parser: ParsePool | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.embedder = embedder
        self.search_options = search_options or SearchOptions()
        self.reranker = reranker
        if self.search_options.rerank and reranker is None:
            raise ValueError("USE_RERANKER=true needs RERANKER_MODEL (a cross-encoder directory)")
        self._keywords = KeywordIndexes()
        self.token_window = embedder.token_window()
        self.kb_root = kb_root
        kb_root.mkdir(parents=True, exist_ok=True)
        self.default_vs_type = default_vs_type
        self.replicas = replicas
        self.parse_limits = parse_limits or ParseLimits()
        # Documents are parsed in worker processes (hard deadline, memory cap): parse_pool.
        self.parser = parser or ParsePool(self.parse_limits)
        for stale in remove_stale_spool_files(spool_dir):
            log.info("stale upload spool file removed", extra={"path": str(stale)})
        self._faiss_meta = sqlite_meta(kb_root)
        self._faiss_lease = WriterLease(kb_root, faiss_lease_ttl_s)
        self._pg: PgDatabase | None = None
        self._pg_meta: MetaStore | None = None
        if pg_conninfo:
            from chat_server.stores.pg_store import PgDatabase

            self._pg = PgDatabase(
                pg_conninfo, embedder.dim, timeout_s=pg_timeout_s, retry_after_s=pg_retry_after_s
            )
            self._pg_meta = self._pg.meta()
        self._indexes: dict[str, VectorIndex] = {}
        self._kb_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._recover_faiss()

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder) -> KnowledgeService:
        reranker_dir = settings.reranker_model_path
        return cls(
            embedder,
            settings.kb_root,
            settings.pg_conninfo if settings.pg_host else None,
            settings.default_vs_type,
            replicas=settings.chat_replicas,
            parse_limits=ParseLimits.from_settings(settings),
            faiss_lease_ttl_s=settings.faiss_lease_ttl_s,
            pg_timeout_s=settings.pg_timeout_s,
            pg_retry_after_s=settings.pg_retry_after_s,
            search_options=SearchOptions(
                mode=settings.search_mode,
                rerank=settings.use_reranker,
                candidates=settings.search_candidates,
                rrf_k=settings.search_rrf_k,
            ),
            reranker=(
                Reranker(reranker_dir, settings.reranker_max_length, embedder.device)
                if reranker_dir is not None
                else None
            ),
            parser=ParsePool(
                ParseLimits.from_settings(settings),
                settings.parse_workers,
                settings.parse_max_memory_bytes,
                settings.parse_kill_grace_s,
            ),
            spool_dir=settings.upload_spool_dir,
        )

    def _recover_faiss(self) -> None:
        """Start-up check of every faiss KB: what a crash mid-write left is repaired here."""
        for kb in self._faiss_meta.list_kbs():
            try:
                index = self._index(kb)
                assert isinstance(index, FaissIndex)
                index.recover()
            except KnowledgeBaseLocked as exc:
                log.warning("faiss recovery skipped", extra={"reason": exc.message})
                return

    def _reconcile_faiss(self, kb_name: str, index_ids: np.ndarray) -> list[int]:
        """Metadata vs a faiss index: forget files with missing vectors, return orphan ids."""
        present = set(index_ids.tolist())
        by_file = self._faiss_meta.chunk_ids_by_file(kb_name)
        broken = sorted(f for f, ids in by_file.items() if not present.issuperset(ids))
        if broken:
            log.warning(
                "files without vectors forgotten; re-upload embeds them",
                extra={"kb": kb_name, "files": broken},
            )
            self._faiss_meta.delete_files(kb_name, broken)
        named = {i for f, ids in by_file.items() if f not in broken for i in ids}
        return [i for i in present if i not in named]

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

    def list_kbs(self, require_all: bool = False) -> list[KnowledgeBase]:
        """Every KB; while PostgreSQL is down only the faiss ones (unless `require_all`)."""
        kbs = list(self._faiss_meta.list_kbs())
        if self._pg_meta is not None:
            try:
                kbs += self._pg_meta.list_kbs()
            except DatabaseUnavailable:
                if require_all:
                    raise
                log.warning("knowledge bases in ADB/PostgreSQL not listed: database down")
        return sorted(kbs, key=lambda kb: kb.name)

    def database_status(self) -> str | None:
        """The ADB/PostgreSQL state, "ok" or "unavailable"; None where none is configured."""
        if self._pg is None:
            return None
        return "ok" if self._pg.ping() else "unavailable"

    def access_store(self) -> AccessStore:
        """Tokens, grants and the audit log: in PostgreSQL where it is the default store (it is
        shared by replicas), else in SQLite on the KB volume."""
        if self._pg is not None and self.default_vs_type in ("adb", "pg"):
            return AccessStore(self._pg.connect, "%s")
        return AccessStore(sqlite_connection(self.kb_root / "access.sqlite"), "?")

    def exists(self, name: str) -> bool:
        """Whether a KB of this name exists, compared as `create_kb` does (case-insensitive)."""
        name = self._valid_name(name)
        return any(kb.name.lower() == name.lower() for kb in self.list_kbs(require_all=True))

    def valid_name(self, name: str) -> str:
        return self._valid_name(name)

    @staticmethod
    def _valid_name(name: str) -> str:
        """The NFC-normalised name (the KB's key in the metadata), or a 400 naming the rule."""
        try:
            return validate_kb_name(name)
        except ValueError as exc:
            raise KnowledgeBaseError(400, str(exc)) from exc

    def _kb_dir(self, name: str) -> Path:
        """A KB's directory on the volume: named by its storage id, never by its display name."""
        return self.kb_root / kb_storage_id(name)

    def get_kb(self, name: str) -> tuple[KnowledgeBase, MetaStore]:
        """The KB (its `name` is the stored, normalised one: use it for every later query)."""
        name = self._valid_name(name)
        for meta in self._metas():
            kb = meta.get_kb(name)
            if kb is not None:
                return kb, meta
        raise KnowledgeBaseError(404, f"knowledge base {name!r} not found")

    def embedding_kb(self, name: str) -> tuple[KnowledgeBase, MetaStore]:
        """`get_kb` for work that compares or adds vectors: a 409 where the KB's vectors were
        made by another model than this service's (EMBEDDING_MODEL changed since), so that
        vectors of two models are never mixed nor a query compared with the other model's.
        A rebuild (`recreate_vector_store`) re-embeds the KB and records the new model; a KB
        without chunks takes this model at once."""
        kb, meta = self.get_kb(name)
        if kb.embed_model == self.embedder.name:
            return kb, meta
        if meta.chunk_signature(kb.name)[0] == 0:
            with self._lock_for(kb.name):
                kb, meta = self.get_kb(kb.name)  # another request may have done it meanwhile
                if kb.embed_model == self.embedder.name:
                    return kb, meta
                if meta.chunk_signature(kb.name)[0] == 0:
                    self._fit_dimension(kb)
                    meta.set_embed_model(kb.name, self.embedder.name)
                    log.info(
                        "empty knowledge base takes the embedding model",
                        extra={"kb": kb.name, "was": kb.embed_model, "now": self.embedder.name},
                    )
                    return KnowledgeBase(kb.name, kb.vs_type, self.embedder.name), meta
        raise KnowledgeBaseError(
            409,
            f"knowledge base {kb.name!r} holds vectors of {kb.embed_model!r}; this service "
            f"embeds with {self.embedder.name!r}: rebuild it (POST "
            f"/knowledge_base/recreate_vector_store) to embed its files with "
            f"{self.embedder.name!r}",
        )

    def _fit_dimension(self, kb: KnowledgeBase) -> None:
        """With the KB's lock held and no vector of its worth keeping: where its index stores
        another dimension than this service's model gives (EMBEDDING_MODEL changed to a model
        of another size), replace it by an empty one of this dimension."""
        index = self._index(kb)
        stored = index.stored_dim()
        if stored is None or stored == self.embedder.dim:
            return
        with index.bulk():
            index.drop()
        with self._guard:
            self._indexes.pop(kb.name, None)  # opened anew at this dimension
        log.info(
            "vector index dropped for a model of another dimension",
            extra={"kb": kb.name, "was": stored, "now": self.embedder.dim},
        )

    def finish_rebuild(self, kb_name: str) -> None:
        """After a rebuild re-embedded every chunk the KB kept: its vectors are this model's."""
        kb, meta = self.get_kb(kb_name)
        if kb.embed_model != self.embedder.name:
            meta.set_embed_model(kb.name, self.embedder.name)
            log.info(
                "knowledge base re-embedded",
                extra={"kb": kb.name, "was": kb.embed_model, "now": self.embedder.name},
            )

    def create_kb(self, name: str, vs_type: str | None, embed_model: str | None) -> KnowledgeBase:
        name = self._valid_name(name)
        vs_type = (vs_type or self.default_vs_type).lower()
        if vs_type not in VS_TYPES:
            raise KnowledgeBaseError(
                400, f"vector_store_type={vs_type!r} is not supported; use one of {VS_TYPES}"
            )
        vs_type = "adb" if vs_type == "pg" else vs_type
        if vs_type == "faiss" and self.replicas > 1:
            raise KnowledgeBaseError(
                409,
                f"vector_store_type='faiss' needs a single chat replica (CHAT_REPLICAS="
                f"{self.replicas}): faiss has one writer; use vector_store_type='adb'",
            )
        if embed_model and embed_model != self.embedder.name:
            # Chatchat clients send their own configured default; one model serves every KB.
            log.warning(
                "embed_model ignored",
                extra={"kb": name, "requested": embed_model, "used": self.embedder.name},
            )
        if any(kb.name.lower() == name.lower() for kb in self.list_kbs(require_all=True)):
            raise KnowledgeBaseError(409, f"knowledge base {name!r} already exists")
        meta = self._meta_for(vs_type)
        if vs_type == "faiss":
            self._faiss_lease.ensure()
        # What a crash during an earlier delete of this name left is not this KB's.
        shutil.rmtree(self._kb_dir(name), ignore_errors=True)
        self._import_store_for(vs_type).forget(name)
        kb = KnowledgeBase(name, vs_type, self.embedder.name)
        meta.create_kb(kb)
        self._content_dir(name).mkdir(parents=True, exist_ok=True)
        self._index(kb)
        log.info("knowledge base created", extra={"kb": name, "vs_type": vs_type})
        return kb

    def delete_kb(self, name: str) -> None:
        kb, meta = self.get_kb(name)
        name = kb.name
        imports = self._import_store_for(kb.vs_type)
        with self._lock_for(name):
            index = self._index(kb)
            # Metadata first: a crash after it leaves files on disk that no KB names (and import
            # records, which create_kb forgets too).
            with index.bulk():
                meta.delete_kb(name)
                fault_point("delete_kb.metadata_deleted")
                index.drop()
            imports.forget(name)
            self._indexes.pop(name, None)
            self._keywords.forget(name)  # a KB made again under this name starts ids anew
            shutil.rmtree(self._kb_dir(name), ignore_errors=True)
        log.info("knowledge base deleted", extra={"kb": name})

    # -- files -----------------------------------------------------------------------------
    def _content_dir(self, kb: str) -> Path:
        return self._kb_dir(kb) / "content"

    def file_path(self, kb: str, file_name: str) -> Path:
        """The stored original of a file; a 404 that says where it is when a bulk import stored
        the file (its original stays in the import source, never on the KB volume)."""
        validate_file_name(file_name)
        kb = self.get_kb(kb)[0].name
        path = self._content_dir(kb) / file_name
        if not path.is_file():
            origin = self.imported_files(kb, [file_name]).get(file_name)
            if origin is not None:
                raise KnowledgeBaseError(
                    404,
                    f"file {file_name!r} of knowledge base {kb!r} was bulk-imported (import "
                    f"{origin[0]!r}, {origin[1]!r} in its source): its original stays in the "
                    "import source, not on the knowledge-base volume",
                )
            raise KnowledgeBaseError(404, f"file {file_name!r} not found in knowledge base {kb!r}")
        return path

    def imported_files(
        self, kb_name: str, file_names: list[str] | None = None, page: FilePage | None = None
    ) -> dict[str, tuple[str, str]]:
        """Files of the KB (of `file_names`, of `page` of its listing, or all) that a bulk
        import stored and whose original is not on the KB volume: name -> (import id, path in
        the import's source)."""
        kb, meta = self.get_kb(kb_name)
        if file_names is None:
            names = [r.file_name for r in self._page_of(meta, kb.name, page or FilePage())]
        else:  # one look-up each, not the whole listing (file_path asks for one name)
            names = [n for n in file_names if meta.get_file(kb.name, n) is not None]
        names = [n for n in names if not (self._content_dir(kb.name) / n).is_file()]
        if not names:
            return {}
        return self._import_store_for(kb.vs_type).origins(kb.name, sorted(names))

    def list_files(self, kb: str) -> list[FileRecord]:
        found, meta = self.get_kb(kb)
        return meta.list_files(found.name)

    def file_page(self, kb: str, page: FilePage) -> tuple[list[FileRecord], int]:
        """One page of the KB's files by name, and how many files the page's filter matches."""
        found, meta = self.get_kb(kb)
        return self._page_of(meta, found.name, page), meta.count_files(
            found.name, page.name_contains
        )

    @staticmethod
    def _page_of(meta: MetaStore, kb: str, page: FilePage) -> list[FileRecord]:
        return meta.list_files(
            kb, offset=page.offset, limit=page.limit, name_contains=page.name_contains
        )

    def _lock_for(self, kb: str) -> threading.Lock:
        with self._guard:
            return self._kb_locks.setdefault(kb, threading.Lock())

    def _index(self, kb: KnowledgeBase) -> VectorIndex:
        with self._guard:
            index = self._indexes.get(kb.name)
            if index is None:
                if kb.vs_type == "faiss":
                    name = kb.name
                    index = FaissIndex(
                        self._kb_dir(name) / "vector_store",
                        self.embedder.dim,
                        self._faiss_lease,
                        lambda ids: self._reconcile_faiss(name, ids),
                    )
                else:
                    assert self._pg is not None
                    index = self._pg.index(kb.name)
                self._indexes[kb.name] = index
            return index

    def _write_content(self, kb: str, f: IncomingFile) -> None:
        """Copy the file (a spool file on local disk) to the KB volume, then rename it in."""
        directory = self._content_dir(kb)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f.name
        if target.exists() and os.path.samefile(f.path, target):
            return  # a rebuild or update reads the stored original itself
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out, f.path.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _prepare(
        self, kb_name: str, meta: MetaStore, params: SplitParams, override: bool, f: IncomingFile
    ) -> PreparedFile:
        """Parse (in a worker process), fingerprint and split one file; unchanged ones are
        marked, not split. Runs on the parse stage's threads."""
        with metrics.timed_stage("parse"):
            return self._prepare_file(kb_name, meta, params, override, f)

    def _prepare_file(
        self, kb_name: str, meta: MetaStore, params: SplitParams, override: bool, f: IncomingFile
    ) -> PreparedFile:
        text = self.parser.parse(f.name, f.path)
        fp = file_fingerprint(f, params)
        existing = meta.get_file(kb_name, f.name)
        if existing is not None and existing.fingerprint == fp:
            return PreparedFile(f, fp, [], 0, unchanged=True)
        if existing is not None and not override:
            raise DocumentError(
                409, f"file {f.name!r} already exists with other content; set override=true"
            )
        split = split_document(
            text,
            params.chunk_size,
            params.chunk_overlap,
            params.zh_title_enhance,
            self.token_window,
        )
        if not split.chunks:
            raise DocumentError(400, f"file {f.name!r} produced no text chunks")
        return PreparedFile(f, fp, split.chunks, split.clamped)

    @metrics.counted_ingestion
    def ingest(
        self,
        kb_name: str,
        files: list[IncomingFile],
        params: SplitParams,
        override: bool = True,
        to_vector_store: bool = True,
        *,
        progress: Callable[[IngestProgress], None] | None = None,
        rebuilding: bool = False,
    ) -> IngestReport:
        """Store files, all or none: a bad file anywhere means nothing of the call is written.

        Pipelined (kb/pipeline.py): files are parsed in worker processes while earlier ones
        are embedded and their vectors written; `progress` hears of each file once its vectors
        are ready (or it is found unchanged), on the calling thread; none of it is listed or
        searchable before the call returns. `rebuilding`: a rebuild's re-ingest, allowed while
        the KB is still recorded with another model (see `embedding_kb`)."""
        kb, meta = self.get_kb(kb_name) if rebuilding else self.embedding_kb(kb_name)
        kb_name = kb.name
        params.validate()
        seen: set[str] = set()
        for f in files:  # names first: a bad one is refused before any parse
            validate_file_name(f.name)
            if f.name in seen:
                raise DocumentError(400, f"file {f.name!r} is given twice")
            seen.add(f.name)
        tracker = IngestTracker(kb_name, len(files), progress)
        parsed = ordered_map(
            lambda f: self._prepare(kb_name, meta, params, override, f),
            files,
            workers=self.parser.workers,
            ahead=self.parser.workers * PARSE_AHEAD_PER_WORKER,
            # Splitting (the tokenizer) yields the cores to searches, as embedding does.
            initializer=lower_priority,
        )
        if not to_vector_store:
            prepared = list(parsed)  # every file validated before any is stored
            for p in prepared:
                if not p.unchanged:
                    self._write_content(kb_name, p.file)
            return IngestReport([], [p.file.name for p in prepared if p.unchanged], 0)
        index = self._index(kb)
        with EmbedStage(
            parsed,
            lambda p: p.chunks,
            self._encode_window,
            EMBED_WINDOW_CHUNKS,
            initializer=lower_priority,
        ) as embedded:
            if kb.vs_type == "faiss":
                # A faiss writer turn holds the index against searches: embed everything first.
                windows = list(tracker.track(embedded))
                report = self._write_windows(kb_name, meta, index, windows)
            else:
                report = self._write_windows(kb_name, meta, index, tracker.track(embedded))
        report.max_tokens = self.token_window.max_tokens
        log.info(
            "ingested",
            extra={
                "kb": kb_name,
                "files": len(report.embedded_files),
                "unchanged": len(report.unchanged_files),
                "chunks": report.chunks,
            },
        )
        return report

    def _encode_window(self, texts: list[str]) -> np.ndarray:
        with metrics.timed_stage("embed"):
            return self.embedder.encode_background(texts)

    def _write_windows(
        self,
        kb_name: str,
        meta: MetaStore,
        index: VectorIndex,
        embedded: Iterable[Embedded[PreparedFile]],
    ) -> IngestReport:
        """Write embedded windows as they come, in one writer turn (PostgreSQL: one transaction,
        so a failure of any stage, even the last file's parse, rolls every vector back)."""
        stored: list[tuple[PreparedFile, np.ndarray]] = []
        unchanged: list[str] = []
        with self._lock_for(kb_name), index.bulk():
            # Crash-consistent order (PostgreSQL: all of it is one transaction):
            # 1. new vectors durable, 2. content, 3. metadata naming them, 4. old vectors out.
            # A crash before 3 leaves vectors no metadata names (removed at recovery) and the
            # file not listed; a crash after 3 leaves old vectors (removed at recovery).
            for window in embedded:
                n = len(window.vectors)
                # Ids on a connection of their own (no row lock held while later files embed);
                # ids a rolled-back write took are simply never used.
                with metrics.timed_stage("write"):
                    ids = self._reserve_ids(meta, kb_name, n) if n else np.zeros(0, np.int64)
                    index.add(ids, window.vectors)
                offset = 0
                for p in window.items:
                    if p.unchanged:
                        unchanged.append(p.file.name)
                        continue
                    stored.append((p, ids[offset : offset + len(p.chunks)]))
                    offset += len(p.chunks)
            if not stored:
                return IngestReport([], unchanged, 0)
            with metrics.timed_stage("write"):
                old_ids = [i for p, _ in stored for i in meta.chunk_ids(kb_name, p.file.name)]
                index.flush()
                fault_point("ingest.vectors_written")
                for p, _ in stored:
                    self._write_content(kb_name, p.file)
                fault_point("ingest.content_written")
                entries = [
                    (
                        FileRecord(p.file.name, p.fingerprint, p.file.size, len(p.chunks)),
                        ids,
                        p.chunks,
                    )
                    for p, ids in stored
                ]
                meta.replace_files(kb_name, entries)
                fault_point("ingest.metadata_written")
                index.delete(old_ids)
        return IngestReport(
            [p.file.name for p, _ in stored],
            unchanged,
            sum(len(p.chunks) for p, _ in stored),
            {p.file.name: p.clamped for p, _ in stored if p.clamped},
        )

    @staticmethod
    def _reserve_ids(meta: MetaStore, kb_name: str, n: int) -> np.ndarray:
        with ThreadPoolExecutor(max_workers=1) as own_connection:
            return own_connection.submit(meta.reserve_ids, kb_name, n).result()

    def delete_files(self, kb_name: str, file_names: list[str], delete_content: bool) -> None:
        kb, meta = self.get_kb(kb_name)
        kb_name = kb.name
        self._records(kb, meta, file_names)
        index = self._index(kb)
        with self._lock_for(kb_name):
            with index.bulk():
                ids = [i for name in file_names for i in meta.chunk_ids(kb_name, name)]
                meta.delete_files(kb_name, file_names)
                fault_point("delete.metadata_deleted")
                index.delete(ids)
            if delete_content:
                for name in file_names:
                    (self._content_dir(kb_name) / name).unlink(missing_ok=True)

    def stored_files(self, kb_name: str) -> list[str]:
        kb_name = self.get_kb(kb_name)[0].name
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
            yield name, self.ingest(kb_name, [IncomingFile.from_path(name, path)], params)

    def reset_vectors(self, kb_name: str, keep: Iterable[str] = ()) -> None:
        """Drop every vector and chunk of a KB but keep its files (for recreate_vector_store);
        the files in `keep` (bulk imports, whose originals are not here to re-split) keep their
        chunks and vectors, for `reembed_stored`."""
        kb, meta = self.get_kb(kb_name)
        kb_name = kb.name
        kept = set(keep)
        with self._lock_for(kb_name):
            index = self._index(kb)
            # A model of another dimension cannot add to the index: it starts empty, and the
            # kept files' chunks wait in the metadata for `reembed_stored` (the KB refuses
            # searches meanwhile: it still records the model before).
            stored = index.stored_dim() if kept else None
            refit = stored not in (None, self.embedder.dim)
            if refit and kb.vs_type == "faiss":
                # A faiss KB's start-up check forgets files whose vectors are missing: their
                # chunks, the only copy here, would go.
                raise KnowledgeBaseError(
                    409,
                    f"knowledge base {kb_name!r} holds bulk-imported files embedded at "
                    f"dimension {stored}; {self.embedder.name!r} gives "
                    f"{self.embedder.dim} and a faiss KB cannot re-embed imported files into "
                    "an index of another dimension: delete the imported files (delete_docs) "
                    "and re-run their imports after the rebuild, or keep the model before",
                )
            with index.bulk():
                dropped = [r.file_name for r in meta.list_files(kb_name) if r.file_name not in kept]
                ids = [i for n in dropped for i in meta.chunk_ids(kb_name, n)] if kept else []
                meta.delete_files(kb_name, dropped)
                fault_point("rebuild.metadata_deleted")
                if kept and not refit:  # the kept files' vectors stay in the index
                    index.delete(ids)
                else:
                    index.drop()
            if not kept or refit:
                with self._guard:
                    self._indexes.pop(kb_name, None)  # a dropped index is opened anew
        self._index(kb)

    @staticmethod
    def _records(
        kb: KnowledgeBase, meta: MetaStore, file_names: list[str]
    ) -> dict[str, FileRecord]:
        """The files' records, or a 400/404 naming the first bad or unknown name."""
        records = {}
        for name in file_names:
            validate_file_name(name)
            record = meta.get_file(kb.name, name)
            if record is None:
                raise KnowledgeBaseError(
                    404, f"file {name!r} not found in knowledge base {kb.name!r}"
                )
            records[name] = record
        return records

    def reembed_stored(self, kb_name: str, file_names: list[str]) -> int:
        """Embed the files' stored chunks anew with this service's model, as they are (not
        re-split), keeping their records (fingerprint, size): a rebuild does this for files a
        bulk import stored, whose originals it cannot read. Returns the chunk count."""
        kb, meta = self.get_kb(kb_name)
        records = self._records(kb, meta, file_names)
        return self._rewrite_chunks(
            kb,
            meta,
            lambda: {n: [c.content for c in meta.file_chunks(kb.name, n)] for n in file_names},
            lambda name, chunks: FileRecord(
                name, records[name].fingerprint, records[name].size, len(chunks)
            ),
        )

    # -- bulk imports (chat_server.bulk_import) ---------------------------------------------
    def import_store(self, kb_name: str) -> ImportStore:
        """The import-progress tables beside the KB's metadata (SQLite or PostgreSQL)."""
        return self._import_store_for(self.get_kb(kb_name)[0].vs_type)

    def _import_store_for(self, vs_type: str) -> ImportStore:
        if vs_type == "faiss":
            return ImportStore(sqlite_connection(self.kb_root / "info.sqlite"), "?")
        self._meta_for(vs_type)  # a 400 naming PG_HOST where there is no database
        assert self._pg is not None
        return ImportStore(self._pg.connect, "%s")

    def stored_fingerprints(self, kb_name: str, file_names: list[str]) -> dict[str, str]:
        """The fingerprints of those files the KB holds (the others are left out)."""
        kb, meta = self.get_kb(kb_name)
        found = {}
        with meta.transaction():  # PostgreSQL: one connection for all the look-ups
            for name in file_names:
                record = meta.get_file(kb.name, name)
                if record is not None:
                    found[name] = record.fingerprint
        return found

    def store_embedded(
        self,
        kb_name: str,
        files: list[EmbeddedFile],
        within: Callable[[], None] | None = None,
    ) -> int:
        """Store precomputed chunks and vectors in ingest's crash-consistent order; `within`
        runs after the metadata is written, in the same transaction on PostgreSQL. The
        originals are not copied to the KB volume (the import source keeps them)."""
        kb, meta = self.embedding_kb(kb_name)
        for f in files:
            validate_file_name(f.record.file_name)
            if f.vectors.shape != (len(f.chunks), self.embedder.dim) or not f.chunks:
                raise KnowledgeBaseError(
                    400,
                    f"file {f.record.file_name!r}: {len(f.chunks)} chunks need vectors of shape "
                    f"({len(f.chunks)}, {self.embedder.dim}), got {f.vectors.shape}",
                )
        index = self._index(kb)
        all_chunks = [c for f in files for c in f.chunks]
        with self._lock_for(kb.name), index.bulk():
            all_ids = meta.reserve_ids(kb.name, len(all_chunks))
            old_ids = [i for f in files for i in meta.chunk_ids(kb.name, f.record.file_name)]
            if all_chunks:
                index.add(all_ids, np.concatenate([f.vectors for f in files]))
                index.flush()
            fault_point("import.vectors_written")
            entries = []
            offset = 0
            for f in files:
                entries.append((f.record, all_ids[offset : offset + len(f.chunks)], f.chunks))
                offset += len(f.chunks)
            meta.replace_files(kb.name, entries)
            if within is not None:
                within()
            fault_point("import.metadata_written")
            index.delete(old_ids)
        return len(all_chunks)

    # -- search ----------------------------------------------------------------------------
    def search_options_for(self, mode: str | None, rerank: bool | None) -> SearchOptions:
        """The deployment's search options with one request's choices, or a 400 saying why not."""
        try:
            options = self.search_options.with_request(mode, rerank)
        except ValueError as exc:
            raise KnowledgeBaseError(400, str(exc)) from exc
        if options.rerank and self.reranker is None:
            raise KnowledgeBaseError(
                400,
                "rerank=true needs a reranker, and this deployment has none: set RERANKER_MODEL "
                "to a cross-encoder directory under MODEL_ROOT",
            )
        return options

    def search(
        self,
        kb_name: str,
        query: str,
        top_k: int,
        score_threshold: float,
        search_mode: str | None = None,
        rerank: bool | None = None,
    ) -> list[SearchHit]:
        """`score_threshold` bounds the vector side (L2 distance) as in 0.2; the keyword side
        admits chunks that contain a query word. None: the deployment's mode and reranking."""
        kb, meta = self.get_kb(kb_name)
        options = self.search_options_for(search_mode, rerank)
        if not query.strip():
            return []
        kb, meta = self.embedding_kb(kb.name)
        vector = self.embedder.encode([query])[0]
        if options.mode == "vector" and not options.rerank:
            return self.search_vector(kb, meta, vector, top_k, score_threshold)
        return self.search_ranked(kb, meta, query, vector, top_k, score_threshold, options)

    def keyword_search(
        self, kb: KnowledgeBase, meta: MetaStore, query: str, top_k: int
    ) -> list[tuple[int, float]]:
        """BM25 over the KB's stored chunks (rebuilt in memory when the store changed)."""
        return self._keywords.search(kb.name, query, top_k, ChunkSource.from_store(meta, kb.name))

    def warm_keyword_indexes(self) -> None:
        """Where the deployment searches by keywords (SEARCH_MODE keyword or hybrid), build
        every KB's keyword index on a background thread now: on a KB of 100,000 files the
        first build tokenizes every chunk, minutes that its first search would otherwise wait."""
        if self.search_options.mode == "vector":
            return
        for kb in self.list_kbs():  # PostgreSQL's only while it answers (list_kbs)
            meta = self._meta_for(kb.vs_type)
            self._keywords.warm(kb.name, ChunkSource.from_store(meta, kb.name))

    def search_ranked(
        self,
        kb: KnowledgeBase,
        meta: MetaStore,
        query: str,
        vector: np.ndarray,
        top_k: int,
        score_threshold: float,
        options: SearchOptions,
    ) -> list[SearchHit]:
        """Keyword, hybrid (rank fusion) or reranked search; scores stay L2 distances."""
        index = self._index(kb)
        pool = max(top_k, options.candidates)
        by_vector: list[tuple[int, float]] = []
        if options.mode != "keyword":
            by_vector = [(i, d) for i, d in index.search(vector, pool) if d <= score_threshold]
        by_keyword = self.keyword_search(kb, meta, query, pool) if options.mode != "vector" else []
        fused = fuse_rrf([[i for i, _ in by_vector], [i for i, _ in by_keyword]], options.rrf_k)
        chunks = meta.get_chunks(kb.name, [i for i, _ in fused[:pool]])
        fused = [(i, s) for i, s in fused[:pool] if i in chunks]
        reranked: dict[int, float] = {}
        if options.rerank:
            assert self.reranker is not None  # search_options_for refuses it otherwise
            texts = [chunks[i].content for i, _ in fused]
            scores = self.reranker.score(query, texts)
            reranked = dict(zip([i for i, _ in fused], scores, strict=True))
            fused.sort(key=lambda item: -reranked[item[0]])
        fused = fused[:top_k]
        distance = dict(by_vector)
        distance.update(index.distances(vector, [i for i, _ in fused if i not in distance]))
        vector_rank = {i: r for r, (i, _) in enumerate(by_vector, start=1)}
        keyword_rank = {i: (r, s) for r, (i, s) in enumerate(by_keyword, start=1)}
        hits = []
        for i, fused_score in fused:
            if i not in distance:
                continue  # metadata without a vector: a write still in flight
            ranking: dict[str, str | int | float] = {"mode": options.mode}
            if options.mode == "hybrid":
                ranking["fused_score"] = round(fused_score, 6)
            if i in vector_rank:
                ranking["vector_rank"] = vector_rank[i]
            if i in keyword_rank:
                ranking["keyword_rank"] = keyword_rank[i][0]
                ranking["bm25"] = round(keyword_rank[i][1], 6)
            if i in reranked:
                ranking["rerank_score"] = round(reranked[i], 6)
            chunk = chunks[i]
            hits.append(SearchHit(i, chunk.file_name, chunk.content, distance[i], ranking))
        return hits

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

    # -- Chatchat 0.2's document editor, KB descriptions, feedback, file chat ----------------
    def split_file(self, f: IncomingFile, params: SplitParams) -> list[str]:
        """One file's chunks, parsed and split as an upload would be (for file chat)."""
        validate_file_name(f.name)
        text = self.parser.parse(f.name, f.path)
        chunks = split_document(
            text,
            params.chunk_size,
            params.chunk_overlap,
            params.zh_title_enhance,
            self.token_window,
        ).chunks
        if not chunks:
            raise DocumentError(400, f"file {f.name!r} produced no text chunks")
        return chunks

    def file_chunks(self, kb_name: str, file_name: str) -> list[Chunk]:
        """A file's stored chunks, in order (0.2's `search_docs` with a file name, no query)."""
        kb, meta = self.get_kb(kb_name)
        validate_file_name(file_name)
        if meta.get_file(kb.name, file_name) is None:
            raise KnowledgeBaseError(
                404, f"file {file_name!r} not found in knowledge base {kb.name!r}"
            )
        return meta.file_chunks(kb.name, file_name)

    def has_custom_chunks(self, kb_name: str, file_name: str) -> bool:
        """Whether a file's chunks were given by a client (update_docs with `docs`)."""
        kb, meta = self.get_kb(kb_name)
        record = meta.get_file(kb.name, file_name)
        return record is not None and record.fingerprint.startswith(CUSTOM_FINGERPRINT)

    def replace_chunks(self, kb_name: str, chunks_by_file: dict[str, list[str]]) -> int:
        """Store the given chunk texts as the files' chunks (0.2's custom docs), embedded as they
        are, never re-split; the files must be in the knowledge base. Returns the chunk count."""
        kb, meta = self.embedding_kb(kb_name)
        self._records(kb, meta, list(chunks_by_file))
        return self._rewrite_chunks(
            kb, meta, lambda: chunks_by_file, lambda n, c: _custom_record(meta, kb.name, n, c)
        )

    def update_chunks_by_id(self, kb_name: str, docs: dict[int, str | None]) -> list[str]:
        """Replace chunks by id (None or blank text deletes one); returns the files changed."""
        kb, meta = self.embedding_kb(kb_name)
        known = meta.get_chunks(kb.name, list(docs))
        missing = sorted(i for i in docs if i not in known)
        if missing:
            raise KnowledgeBaseError(
                404, f"chunk ids {missing} not found in knowledge base {kb.name!r}"
            )
        files = sorted({known[i].file_name for i in docs})

        def edited() -> dict[str, list[str]]:
            out = {}
            for name in files:
                texts = []
                for chunk in meta.file_chunks(kb.name, name):
                    text = docs.get(chunk.id, chunk.content)
                    if text and text.strip():
                        texts.append(text)
                out[name] = texts
            return out

        self._rewrite_chunks(kb, meta, edited, lambda n, c: _custom_record(meta, kb.name, n, c))
        return files

    def _rewrite_chunks(
        self,
        kb: KnowledgeBase,
        meta: MetaStore,
        texts_of: Callable[[], dict[str, list[str]]],
        record_of: Callable[[str, list[str]], FileRecord],
    ) -> int:
        """Swap in new chunks for files, in ingest's crash-consistent order, under the KB lock
        (`texts_of` reads the current chunks there, so an edit never undoes a concurrent one);
        `record_of(name, chunks)` is each file's new record."""
        index = self._index(kb)
        with self._lock_for(kb.name):
            chunks_by_file = {
                name: [t for t in texts if t.strip()] for name, texts in texts_of().items()
            }
            all_chunks = [c for chunks in chunks_by_file.values() for c in chunks]
            vectors = self.embedder.encode_background(all_chunks)
            with index.bulk():
                all_ids = meta.reserve_ids(kb.name, len(all_chunks))
                old_ids = [i for name in chunks_by_file for i in meta.chunk_ids(kb.name, name)]
                if all_chunks:
                    index.add(all_ids, vectors)
                    index.flush()
                entries = []
                offset = 0
                for name, chunks in chunks_by_file.items():
                    record = record_of(name, chunks)
                    entries.append((record, all_ids[offset : offset + len(chunks)], chunks))
                    offset += len(chunks)
                meta.replace_files(kb.name, entries)
                index.delete(old_ids)
        log.info("chunks replaced", extra={"kb": kb.name, "chunks": len(all_chunks)})
        return len(all_chunks)

    def kb_info(self, kb_name: str) -> str:
        """The KB's description; 0.2's default (`关于<name>的知识库`) until one is set."""
        kb, meta = self.get_kb(kb_name)
        info = meta.get_kb_info(kb.name)
        return f"关于{kb.name}的知识库" if info is None else info

    def set_kb_info(self, kb_name: str, kb_info: str) -> None:
        if len(kb_info) > KB_INFO_MAX:
            raise KnowledgeBaseError(
                400, f"kb_info has {len(kb_info)} characters; at most {KB_INFO_MAX} are allowed"
            )
        kb, meta = self.get_kb(kb_name)
        meta.set_kb_info(kb.name, kb_info)

    def _feedback_meta(self) -> MetaStore:
        # With several replicas the default store is ADB (faiss is refused): one shared table.
        return self._meta_for(self.default_vs_type)

    def record_feedback(self, message_id: str, score: int, reason: str) -> None:
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._feedback_meta().add_feedback(message_id, score, reason, created)

    def feedback(self, message_id: str) -> list[tuple[str, int, str, str]]:
        return self._feedback_meta().list_feedback(message_id)

    def close(self) -> None:
        self._keywords.close()
        self.parser.close()
        self._faiss_lease.release()
        if self._pg is not None:
            self._pg.close()
