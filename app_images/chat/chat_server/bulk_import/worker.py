"""One shard of a bulk import: list, skip what is stored, parse, split, embed in batches, store.

`run_shard` is the whole worker as a function (the CLI in `__main__` and the benchmark call
it). Per file, in listing order: its fingerprint (content hash + split parameters, the service's
`file_fingerprint`) is compared with the store's before anything is parsed, so a re-run or a
retried pod embeds nothing already stored; changed files are parsed in the service's parse
workers (same bounds as uploads) while the main thread embeds the previous batch. A batch is
stored with its files' outcomes; only then is each file's JSON log line written, so the logs and
`import_status` never claim more than the store holds. A failed file is recorded with its reason
and never stops the others.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from chat_server.bulk_import.sinks import (
    ApiSink,
    DatabaseSink,
    ImportRefused,
    Sink,
    Unavailable,
    retrying,
)
from chat_server.bulk_import.source import SourceFile, list_source, shard_files
from chat_server.bulk_import.wire import wire_size
from chat_server.errors import ServiceError
from chat_server.kb.embeddings import Embedder
from chat_server.kb.loaders import DocumentError
from chat_server.kb.service import (
    EmbeddedFile,
    IncomingFile,
    KnowledgeService,
    SplitParams,
    file_fingerprint,
)
from chat_server.kb.splitter import split_document
from chat_server.settings import Settings
from chat_server.stores.base import FileRecord, KnowledgeBaseError, fault_point
from chat_server.stores.imports import FileOutcome

log = logging.getLogger("chat_server.bulk_import")
FILES_PER_WINDOW = 256  # fingerprints asked of the store at once; parse look-ahead
KB_WAIT_S = 600.0  # how long shards other than 0 wait for shard 0 to create the KB


class ImportConfigError(RuntimeError):
    """Wrong arguments or settings: a retry of the pod cannot help (exit status 2)."""


class Interrupted(RuntimeError):
    """SIGTERM: the worker stopped after its last stored batch (exit status 143)."""


@dataclass
class ShardReport:
    kb: str
    import_id: str
    shard: int
    shard_count: int
    attempt: int = 0
    sink: str = ""
    listed_total: int = 0
    listed: int = 0
    stored: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    seconds: float = 0.0
    failures: list[FileOutcome] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "kb": self.kb,
            "import_id": self.import_id,
            "shard": self.shard,
            "shard_count": self.shard_count,
            "attempt": self.attempt,
            "sink": self.sink,
            "listed_total": self.listed_total,
            "listed": self.listed,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "chunks_per_s": round(self.chunks / self.seconds, 1) if self.seconds else 0.0,
        }


@dataclass
class _Parsed:
    source: SourceFile
    fingerprint: str
    size: int
    text: str


@dataclass
class _Prepared:
    source: SourceFile
    record: FileRecord
    chunks: list[str]


class _Stop:
    """SIGTERM sets it; the main loop stops after the batch it is storing."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def worker_service(settings: Settings, embedder: Embedder, kb_root: Path) -> KnowledgeService:
    """The service's own store and parse code, on a scratch KB root (a pod has no KB volume;
    faiss KBs are written by the chat service, never here)."""
    local = settings.model_copy(
        update={"kb_root": kb_root, "reranker_model": "", "use_reranker": False}
    )
    return KnowledgeService.from_settings(local, embedder)


def run_shard(
    kb_name: str,
    source: Path,
    import_id: str,
    shard: int = 0,
    shard_count: int = 1,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    params: SplitParams | None = None,
    batch_chunks: int | None = None,
    handle_sigterm: bool = False,
) -> ShardReport:
    """Import one shard of `source` into `kb_name`; see the module doc. Raises `Unavailable`
    (store down after retries), `ImportConfigError`, or `Interrupted` after a SIGTERM."""
    settings = settings or Settings()
    if not source.is_dir():
        raise ImportConfigError(f"import source {source} is not a directory")
    if not 0 <= shard < shard_count:
        raise ImportConfigError(
            f"shard {shard} (JOB_COMPLETION_INDEX) is not in 0..{shard_count - 1} "
            "(IMPORT_SHARD_COUNT)"
        )
    params = (params or SplitParams(settings.chunk_size, settings.chunk_overlap)).validate()
    embedder = embedder or Embedder(
        settings.embedding_model_path,
        settings.embedding_batch_size,
        settings.embedding_device,
        settings.embedding_batch_tokens,
        threads=settings.embedding_threads,
    )
    stop = _Stop()
    previous = signal.signal(signal.SIGTERM, stop) if handle_sigterm else None
    scratch = tempfile.TemporaryDirectory(prefix="chat-import-")
    service = worker_service(settings, embedder, Path(scratch.name))
    try:
        kb = service.valid_name(kb_name)
        report = ShardReport(kb, import_id, shard, shard_count)
        sink = _open_sink(service, settings, kb, import_id, shard, shard_count)
        report.sink = sink.kind
        try:
            _Shard(
                service,
                sink,
                source,
                params,
                report,
                stop,
                batch_chunks or settings.import_batch_chunks,
                settings.parse_workers,
                settings.import_retries,
            ).run()
        finally:
            sink.close()
        return report
    except KnowledgeBaseError as exc:
        raise ImportConfigError(exc.message) from exc
    finally:
        service.close()
        scratch.cleanup()
        if handle_sigterm:
            signal.signal(signal.SIGTERM, previous)


def _open_sink(
    service: KnowledgeService,
    settings: Settings,
    kb: str,
    import_id: str,
    shard: int,
    shard_count: int,
) -> Sink:
    """PostgreSQL directly when the KB is there; else the chat API. Shard 0 creates a missing
    KB (DEFAULT_VS_TYPE), the other shards wait for it."""
    ends = time.monotonic() + KB_WAIT_S
    created = False
    while True:
        sink = _find_kb(service, settings, kb, import_id, shard, shard_count)
        if sink is not None:
            return sink
        if shard == 0 and not created:
            _create_kb(service, settings, kb)
            created = True
            continue
        if time.monotonic() > ends:
            raise Unavailable(f"knowledge base {kb!r} did not appear within {KB_WAIT_S:g}s")
        time.sleep(1.0)


def _api_sink(
    service: KnowledgeService,
    settings: Settings,
    kb: str,
    import_id: str,
    shard: int,
    shard_count: int,
) -> ApiSink:
    key = settings.chat_api_key.get_secret_value() if settings.chat_api_key else ""
    if not key:
        raise ImportConfigError("CHAT_API_KEY is not set: the worker needs it for the chat API")
    return ApiSink(
        settings.chat_api_url,
        key,
        kb,
        import_id,
        shard,
        shard_count,
        service.embedder.name,
        settings.import_shard_max_bytes,
    )


def _find_kb(
    service: KnowledgeService,
    settings: Settings,
    kb: str,
    import_id: str,
    shard: int,
    shard_count: int,
) -> Sink | None:
    if settings.pg_host:
        found = retrying("find the KB", _pg_kb, service, kb, tries=settings.import_retries)
        if found is not None:
            try:  # the service's rule: no two models' vectors in one KB; an empty KB takes ours
                service.embedding_kb(found.name)
            except KnowledgeBaseError as exc:
                raise ImportConfigError(
                    f"{exc.message} (this worker's EMBEDDING_MODEL: give the Job the chat pod's, "
                    "or rebuild the KB first)"
                ) from exc
            return DatabaseSink(service, found.name, import_id, shard, shard_count)
    api = _api_sink(service, settings, kb, import_id, shard, shard_count)
    pg_default = bool(settings.pg_host) and settings.default_vs_type in ("adb", "pg")
    try:
        # Where PostgreSQL is the default store, an unreachable API is not a reason to wait:
        # the KB is made there (only a faiss KB of the same name goes unseen).
        tries = 1 if pg_default else settings.import_retries
        info = retrying("find the KB", api.check, [], tries=tries)
    except Unavailable:
        if not pg_default:
            raise
        api.close()
        return None
    except ImportRefused as exc:
        if " 404:" in str(exc):
            api.close()
            return None
        raise ImportConfigError(str(exc)) from exc
    if info["embed_model"] != service.embedder.name or info["dim"] != service.embedder.dim:
        raise ImportConfigError(
            f"the chat service embeds with {info['embed_model']!r} (dimension {info['dim']}); "
            f"this worker with {service.embedder.name!r} ({service.embedder.dim}): give the Job "
            "the chat pod's EMBEDDING_MODEL"
        )
    return api


def _pg_kb(service: KnowledgeService, kb: str) -> object:
    from psycopg import IntegrityError

    from chat_server.stores.base import DatabaseUnavailable

    try:
        found, _ = service.get_kb(kb)
    except KnowledgeBaseError as exc:
        if exc.status == 404:
            return None
        raise
    except DatabaseUnavailable as exc:
        raise Unavailable(exc.message) from exc
    except IntegrityError as exc:  # two pods making the schema at once: the loser asks again
        raise Unavailable(f"schema made concurrently: {exc}") from exc
    if found.vs_type == "faiss":
        return None
    return found


def _create_kb(service: KnowledgeService, settings: Settings, kb: str) -> None:
    vs_type = settings.default_vs_type
    if vs_type in ("adb", "pg") and settings.pg_host:
        try:
            service.create_kb(kb, "adb", None)
        except KnowledgeBaseError as exc:
            if exc.status != 409:
                raise
        log.info("knowledge base created by the import", extra={"kb": kb, "vs_type": "adb"})
        return
    api = _api_sink(service, settings, kb, "create", 0, 1)
    try:
        api.post(
            "/knowledge_base/create_knowledge_base",
            {"knowledge_base_name": kb, "vector_store_type": vs_type},
        )
    except ImportRefused as exc:
        if " 409:" not in str(exc):
            raise ImportConfigError(str(exc)) from exc
    finally:
        api.close()
    log.info("knowledge base created by the import", extra={"kb": kb, "vs_type": vs_type})


class _Shard:
    def __init__(
        self,
        service: KnowledgeService,
        sink: Sink,
        root: Path,
        params: SplitParams,
        report: ShardReport,
        stop: _Stop,
        batch_chunks: int,
        parse_workers: int,
        tries: int,
    ) -> None:
        self.service = service
        self.tries = tries
        self.parse_workers = parse_workers
        self.sink = sink
        self.root = root
        self.params = params
        self.report = report
        self.stop = stop
        self.batch_chunks = batch_chunks
        self.dim = service.embedder.dim
        self.batch: list[_Prepared] = []
        self.batch_bytes = 0
        self.outcomes: list[FileOutcome] = []

    def run(self) -> None:
        started = time.monotonic()
        listing = list_source(self.root)
        mine = shard_files(listing, self.report.shard, self.report.shard_count)
        self.report.listed_total = len(listing)
        self.report.listed = len(mine)
        self.report.attempt = retrying(
            "start the shard", self.sink.start, len(mine), tries=self.tries
        )
        log.info("import shard started", extra=self.report.summary())
        with ThreadPoolExecutor(self.parse_workers, thread_name_prefix="import-parse") as pool:
            for parsed in self._prepared(pool, mine):
                item = parsed if isinstance(parsed, FileOutcome) else self._split(parsed)
                if isinstance(item, FileOutcome):
                    self.outcomes.append(item)
                else:
                    self._add(item)
                if len(self.outcomes) >= FILES_PER_WINDOW:
                    self._flush()
                if self.stop.requested:
                    break
            self._flush()
        self.report.seconds = time.monotonic() - started
        if self.stop.requested:
            log.warning("import shard stopped by SIGTERM", extra=self.report.summary())
            raise Interrupted("SIGTERM: stopped after the last stored batch")
        retrying("finish the shard", self.sink.finish, tries=self.tries)
        log.info("import shard finished", extra=self.report.summary())

    def _prepared(
        self, pool: ThreadPoolExecutor, files: list[SourceFile]
    ) -> Iterator[_Parsed | FileOutcome]:
        """Each file's outcome or text, in order; the next window is parsed ahead."""
        windows = iter(
            [files[i : i + FILES_PER_WINDOW] for i in range(0, len(files), FILES_PER_WINDOW)]
        )
        pending: deque[list[Future[_Parsed | FileOutcome]]] = deque()

        def submit_next() -> None:
            window = next(windows, None)
            if window is None:
                return
            names = [f.file_name for f in window if not f.problem]
            stored = retrying("read fingerprints", self.sink.fingerprints, names, tries=self.tries)
            pending.append([pool.submit(self._prepare, f, stored) for f in window])

        submit_next()
        submit_next()
        while pending:
            for future in pending.popleft():
                yield future.result()
            submit_next()

    def _prepare(self, f: SourceFile, stored: dict[str, str]) -> _Parsed | FileOutcome:
        if f.problem:
            return FileOutcome(f.path, f.file_name, "failed", f.problem)
        path = f.absolute(self.root)
        try:
            incoming = IncomingFile.from_path(f.file_name, path)
        except OSError as exc:
            return FileOutcome(f.path, f.file_name, "failed", f"could not be read: {exc}")
        fp = file_fingerprint(incoming, self.params)
        if stored.get(f.file_name) == fp:
            return FileOutcome(f.path, f.file_name, "unchanged")
        try:
            text = self.service.parser.parse(f.file_name, path)
        except DocumentError as exc:
            return FileOutcome(f.path, f.file_name, "failed", exc.message)
        except ServiceError as exc:  # the parser itself could not run: the pod is unwell
            raise Unavailable(exc.message) from exc
        return _Parsed(f, fp, incoming.size, text)

    def _split(self, parsed: _Parsed) -> _Prepared | FileOutcome:
        """In the main thread: the tokenizer that counts tokens is the embedder's, and a fast
        tokenizer must not be used by two threads at once."""
        p, f = self.params, parsed.source
        chunks = split_document(
            parsed.text,
            p.chunk_size,
            p.chunk_overlap,
            p.zh_title_enhance,
            self.service.token_window,
        ).chunks
        if not chunks:
            return FileOutcome(f.path, f.file_name, "failed", "produced no text chunks")
        record = FileRecord(f.file_name, parsed.fingerprint, parsed.size, len(chunks))
        return _Prepared(f, record, chunks)

    def _add(self, item: _Prepared) -> None:
        limit = self.sink.max_batch_bytes
        size = wire_size(item.chunks, self.dim)
        if limit is not None and size > limit:
            self.outcomes.append(
                FileOutcome(
                    item.source.path,
                    item.source.file_name,
                    "failed",
                    f"its {len(item.chunks)} chunks and vectors take {size} bytes, more than "
                    f"one hand-over to the chat service may (IMPORT_SHARD_MAX_BYTES={limit}); "
                    "raise it on the chat pod and the Job, or use an adb knowledge base",
                )
            )
            return
        if limit is not None and self.batch_bytes + size > limit:
            self._flush()
        self.batch.append(item)
        self.batch_bytes += size
        if sum(len(b.chunks) for b in self.batch) >= self.batch_chunks:
            self._flush()

    def _flush(self) -> None:
        if not self.batch and not self.outcomes:
            return
        texts = [c for b in self.batch for c in b.chunks]
        vectors = self.service.embedder.encode(texts)
        files = []
        offset = 0
        for b in self.batch:
            files.append(EmbeddedFile(b.record, b.chunks, vectors[offset : offset + len(b.chunks)]))
            offset += len(b.chunks)
        stored = [
            FileOutcome(b.source.path, b.source.file_name, "stored", chunks=len(b.chunks))
            for b in self.batch
        ]
        outcomes = stored + self.outcomes
        fault_point("import.batch_embedded")
        retrying("store a batch", self.sink.store, files, outcomes, tries=self.tries)
        fault_point("import.batch_stored")
        self._report(outcomes)
        self.batch, self.batch_bytes, self.outcomes = [], 0, []

    def _report(self, outcomes: list[FileOutcome]) -> None:
        r = self.report
        for o in outcomes:
            if o.status == "stored":
                r.stored += 1
                r.chunks += o.chunks
            elif o.status == "unchanged":
                r.unchanged += 1
            else:
                r.failed += 1
                r.failures.append(o)
            log.info(
                "import file",
                extra={
                    "kb": r.kb,
                    "import_id": r.import_id,
                    "shard": r.shard,
                    "attempt": r.attempt,
                    "path": o.path,
                    "file_name": o.file_name,
                    "status": o.status,
                    "reason": o.reason,
                    "chunks": o.chunks,
                },
            )
