"""Bulk-import routes: the fingerprint check and hand-over of import workers, and the status.

A worker that cannot write the KB's store itself (faiss: this service is its single writer)
asks `import_check` which of its files are stored already and hands each batch of embedded
files to `import_shard`, which stores them in ingest's crash-consistent order together with
the files' outcomes. `import_status` shows every import of a KB, whichever way it was written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from chat_server.access.principal import KbRole, declare
from chat_server.api.deps import AccessDep, FilePageDep, ServiceDep
from chat_server.bulk_import.wire import IMPORT_ID_PATTERN, ImportCheck, ImportShard
from chat_server.errors import ServiceError
from chat_server.kb.service import EmbeddedFile, KnowledgeService
from chat_server.stores.base import FileRecord
from chat_server.stores.imports import FileOutcome

router = APIRouter(prefix="/knowledge_base", tags=["Bulk import"])


def ok(data: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": data}


def _check(service: KnowledgeService, kb_name: str, file_names: list[str]) -> dict[str, Any]:
    kb, _ = service.embedding_kb(kb_name)  # a 409 before any embedding if it needs a rebuild
    return {
        "knowledge_base_name": kb.name,
        "vs_type": kb.vs_type,
        "embed_model": service.embedder.name,
        "dim": service.embedder.dim,
        "fingerprints": service.stored_fingerprints(kb.name, file_names),
    }


def _shard(service: KnowledgeService, kb_name: str, body: ImportShard) -> dict[str, Any]:
    if body.shard >= body.shard_count:
        raise ServiceError(400, f"shard {body.shard} is not in 0..{body.shard_count - 1}")
    store = service.import_store(kb_name)
    kb = service.get_kb(kb_name)[0].name
    if body.phase == "start":
        attempt = store.start_shard(kb, body.import_id, body.shard, body.shard_count, body.listed)
        return {"attempt": attempt}
    if body.phase == "done":
        store.finish_shard(kb, body.import_id, body.shard)
        return {}
    if body.attempt < 1:
        raise ServiceError(400, "attempt must be the number the start phase answered (>= 1)")
    if body.files and body.embed_model != service.embedder.name:
        raise ServiceError(
            409,
            f"the vectors were made by {body.embed_model!r}; this service embeds with "
            f"{service.embedder.name!r}: give the import Job the chat pod's EMBEDDING_MODEL",
        )
    files = []
    for f in body.files:
        try:
            vectors = f.matrix(service.embedder.dim)
        except ValueError as exc:
            raise ServiceError(400, str(exc)) from exc
        entry = FileRecord(f.file_name, f.fingerprint, f.size, len(f.chunks))
        files.append(EmbeddedFile(entry, f.chunks, vectors))
    outcomes = [
        FileOutcome(f.path, f.file_name, "stored", chunks=len(f.chunks)) for f in body.files
    ]
    outcomes += [FileOutcome(o.path, o.file_name, o.status, o.reason) for o in body.outcomes]

    def record() -> None:
        store.record(kb, body.import_id, body.shard, body.attempt, outcomes)

    chunks = service.store_embedded(kb, files, record) if files else 0
    if not files:
        record()
    return {"stored": len(files), "chunks": chunks}


@router.post("/import_check", openapi_extra=declare("kb_write"))
async def import_check(body: ImportCheck, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    return ok(await run_in_threadpool(_check, service, kb, body.file_names))


@router.post("/import_shard", openapi_extra=declare("kb_write"))
async def import_shard(body: ImportShard, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    return ok(await run_in_threadpool(_shard, service, kb, body))


@router.get("/import_status", openapi_extra=declare("kb_read"))
async def import_status(
    service: ServiceDep,
    access: AccessDep,
    knowledge_base_name: str = Query(...),
    import_id: str | None = Query(default=None, pattern=IMPORT_ID_PATTERN),
) -> dict:
    kb = await access.check(knowledge_base_name, KbRole.reader)

    def status() -> dict[str, Any]:
        name = service.get_kb(kb)[0].name
        return {
            "knowledge_base_name": name,
            "imports": service.import_store(name).status(name, import_id),
        }

    return ok(await run_in_threadpool(status))


@router.get("/imported_files", openapi_extra=declare("kb_read"))
async def imported_files(
    service: ServiceDep, access: AccessDep, page: FilePageDep, knowledge_base_name: str = Query(...)
) -> dict:
    """The KB's files that a bulk import stored and whose original is not on the KB volume
    (`download_doc` answers 404 for them): name -> the import and the path in its source. With
    `list_files`' paging parameters, only of the files of that page."""
    kb = await access.check(knowledge_base_name, KbRole.reader)
    found = await run_in_threadpool(service.imported_files, kb, None, page)
    return ok(
        {name: {"import_id": i, "source_path": path} for name, (i, path) in sorted(found.items())}
    )
