"""Knowledge-base routes: Chatchat 0.2's `/knowledge_base/*` paths, fields and envelopes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Body, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from chat_server.access.principal import Grant, KbRole, declare
from chat_server.api.answers import sse
from chat_server.api.deps import Access, AccessDep, FilePageDep, ServiceDep, SettingsDep
from chat_server.api.retrieval_fields import RetrievalFields
from chat_server.api.uploads import SpoolingRoute, read_uploads
from chat_server.errors import ServiceError
from chat_server.kb.service import (
    IncomingFile,
    IngestReport,
    KnowledgeService,
    SearchHit,
    SplitParams,
)
from chat_server.settings import Settings
from chat_server.stores.base import Chunk

# SpoolingRoute: uploaded files go to spool files on local disk as they arrive (api.uploads).
router = APIRouter(prefix="/knowledge_base", tags=["Knowledge Base"], route_class=SpoolingRoute)
_DEFAULTS = Settings.model_fields


# -- request models (field names as Chatchat 0.2 clients send them) ----------------------------
class CreateKnowledgeBase(BaseModel):
    knowledge_base_name: str
    vector_store_type: str | None = None
    embed_model: str | None = None


class SearchDocs(RetrievalFields):
    query: str = ""
    knowledge_base_name: str
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)
    file_name: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeleteDocs(BaseModel):
    knowledge_base_name: str
    file_names: list[str]
    delete_content: bool = False
    not_refresh_vs_cache: bool = False


class UpdateDocs(BaseModel):
    knowledge_base_name: str
    file_names: list[str]
    chunk_size: int = 250
    chunk_overlap: int = 50
    zh_title_enhance: bool = False
    override_custom_docs: bool = False
    docs: Any = None
    not_refresh_vs_cache: bool = False


class UpdateDocsById(BaseModel):
    knowledge_base_name: str
    # {chunk id: Document}; a None or blank `page_content` deletes the chunk (as in 0.2).
    docs: dict[str, dict[str, Any] | None]


class UpdateInfo(BaseModel):
    knowledge_base_name: str
    kb_info: str


class RecreateVectorStore(BaseModel):
    knowledge_base_name: str
    allow_empty_kb: bool = True
    vs_type: str | None = None
    embed_model: str | None = None
    chunk_size: int = 250
    chunk_overlap: int = 50
    zh_title_enhance: bool = False
    not_refresh_vs_cache: bool = False


def ok(msg: str = "success", data: Any = None) -> dict[str, Any]:
    return {"code": 200, "msg": msg, "data": data}


def chunk_texts(file_name: str, docs: Any) -> list[str]:
    """The texts of 0.2 Documents (`{"page_content", "metadata", "type"}`) or plain strings."""
    if not isinstance(docs, list):
        raise ServiceError(400, f"docs[{file_name!r}] must be a list of documents")
    texts = []
    for n, doc in enumerate(docs):
        text = doc.get("page_content") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise ServiceError(
                400, f"docs[{file_name!r}][{n}] must be a string or have a page_content string"
            )
        texts.append(text)
    return texts


def custom_docs(docs: Any) -> dict[str, list[str]]:
    """0.2's `docs` field: a JSON string (as its client sends it) or an object, {file: [...]}."""
    if docs in (None, "", {}):
        return {}
    if isinstance(docs, str):
        try:
            docs = json.loads(docs)
        except json.JSONDecodeError as exc:
            raise ServiceError(400, f"docs is not JSON: {exc}") from exc
    if not isinstance(docs, dict):
        raise ServiceError(400, "docs must be an object {file name: [documents]}")
    return {name: chunk_texts(name, items) for name, items in docs.items()}


def chunks_to_docs(chunks: list[Chunk]) -> list[dict[str, Any]]:
    # 0.2's DocumentWithVSId; 3.0 is its score of a document that was listed, not searched.
    return [
        {
            "page_content": c.content,
            "metadata": {"source": c.file_name},
            "type": "Document",
            "id": str(c.id),
            "score": 3.0,
        }
        for c in chunks
    ]


def hits_to_docs(hits: list[SearchHit]) -> list[dict[str, Any]]:
    return [
        {
            "page_content": h.content,
            "metadata": {"source": h.file_name, **({"ranking": h.ranking} if h.ranking else {})},
            "type": "Document",
            "id": str(h.id),
            "score": round(h.score, 6),
        }
        for h in hits
    ]


@router.get("/list_knowledge_bases", openapi_extra=declare("kb_list"))
async def list_knowledge_bases(service: ServiceDep, access: AccessDep) -> dict:
    kbs = await run_in_threadpool(service.list_kbs)
    return ok(data=await run_in_threadpool(access.readable, [k.name for k in kbs]))


def create_owned(service: KnowledgeService, access: Access, body: CreateKnowledgeBase) -> str:
    """Create the KB and make a user who creates it its owner (grants of an older KB of the
    same name are dropped first: they are not this one's)."""
    name = service.valid_name(body.knowledge_base_name)
    if service.exists(name):
        raise ServiceError(409, f"knowledge base {name!r} already exists")
    access.store.forget_kb(name)
    kb = service.create_kb(name, body.vector_store_type, body.embed_model)
    if access.principal.is_user:
        access.store.set_grant(
            Grant(kb.name, "user", access.principal.subject, KbRole.owner),
            access.principal.subject,
        )
    return kb.name


@router.post("/create_knowledge_base", openapi_extra=declare("kb_create"))
async def create_knowledge_base(
    body: CreateKnowledgeBase, service: ServiceDep, access: AccessDep
) -> dict:
    name = await run_in_threadpool(create_owned, service, access, body)
    await access.audit("create_knowledge_base", name, vector_store_type=body.vector_store_type)
    return ok(f"已新增知识库 {body.knowledge_base_name}")


@router.post("/delete_knowledge_base", openapi_extra=declare("kb_own"))
async def delete_knowledge_base(
    service: ServiceDep, access: AccessDep, body: Any = Body(..., examples=["samples"])
) -> dict:
    # Chatchat's client posts the bare name as a JSON string; accept an object too.
    name = body.get("knowledge_base_name") if isinstance(body, dict) else body
    if not isinstance(name, str):
        raise ServiceError(400, "body must be the knowledge base name as a JSON string")
    kb = await access.check(name, KbRole.owner)
    await run_in_threadpool(service.delete_kb, kb)
    await run_in_threadpool(access.store.forget_kb, kb)
    await access.audit("delete_knowledge_base", kb)
    return ok(f"成功删除知识库 {name}")


@router.get("/list_files", openapi_extra=declare("kb_read"))
async def list_files(
    service: ServiceDep, access: AccessDep, page: FilePageDep, knowledge_base_name: str = Query(...)
) -> dict:
    """The KB's file names, sorted; `total`: how many files match (`name_contains`), so that a
    client can page through a large KB with `offset` and `limit`."""
    kb = await access.check(knowledge_base_name, KbRole.reader)
    files, total = await run_in_threadpool(service.file_page, kb, page)
    return {**ok(data=[f.file_name for f in files]), "total": total}


@router.post("/search_docs", openapi_extra=declare("kb_read"))
async def search_docs(body: SearchDocs, service: ServiceDep, access: AccessDep) -> list[dict]:
    kb = await access.check(body.knowledge_base_name, KbRole.reader)
    if not body.query.strip():
        # 0.2 lists a file's chunks for a file name without a query (its document editor).
        file_name = body.file_name or body.metadata.get("source")
        if not file_name:
            return []
        chunks = await run_in_threadpool(service.file_chunks, kb, str(file_name))
        return chunks_to_docs(chunks)
    hits = await run_in_threadpool(
        service.search,
        kb,
        body.query,
        body.top_k,
        body.score_threshold,
        body.search_mode,
        body.rerank,
    )
    if body.file_name:
        hits = [h for h in hits if h.file_name == body.file_name]
    return hits_to_docs(hits)


@router.post("/upload_docs", openapi_extra=declare("kb_write"))
async def upload_docs(
    service: ServiceDep,
    settings: SettingsDep,
    access: AccessDep,
    files: list[UploadFile] = File(..., description="documents to add"),
    knowledge_base_name: str = Form(...),
    override: bool = Form(False),
    to_vector_store: bool = Form(True),
    chunk_size: int = Form(_DEFAULTS["chunk_size"].default),
    chunk_overlap: int = Form(_DEFAULTS["chunk_overlap"].default),
    zh_title_enhance: bool = Form(False),
    docs: str = Form(""),
    not_refresh_vs_cache: bool = Form(False),
) -> dict:
    kb = await access.check(knowledge_base_name, KbRole.editor)
    # 0.2's `docs`: chunks given for some files are stored as given instead of the split ones
    # (v0.2.10 upload_docs hands them to update_docs). Checked before anything is written.
    given = custom_docs(docs)
    uploaded = {upload.filename for upload in files}
    stored = (
        {r.file_name for r in await run_in_threadpool(service.list_files, kb)} if given else set()
    )
    for name in given:
        if name not in uploaded and name not in stored:
            raise ServiceError(
                400, f"docs names {name!r}, which is neither uploaded now nor in {kb!r}"
            )
    if given and not to_vector_store:
        raise ServiceError(400, "docs (given chunks) need to_vector_store=true")
    try:
        incoming = await read_uploads(files, settings)

        def run() -> IngestReport:
            report = service.ingest(
                kb,
                incoming,
                SplitParams(chunk_size, chunk_overlap, zh_title_enhance),
                override,
                to_vector_store,
            )
            if given:
                service.replace_chunks(kb, given)
            return report

        report = await run_in_threadpool(run)
    finally:
        for upload in files:  # the spool files go now, not after the response
            await upload.close()
    await access.audit(
        "upload_docs",
        kb,
        embedded_files=report.embedded_files,
        unchanged_files=report.unchanged_files,
    )
    data: dict[str, Any] = {
        "failed_files": {},
        "embedded_files": report.embedded_files,
        "unchanged_files": report.unchanged_files,
        "chunks": report.chunks,
    }
    msg = "文件上传与向量化完成"
    if report.clamped:
        # Extra field: the embedding model would have read only the start of these chunks.
        data["chunk_size_clamped"] = {
            "chunk_size": chunk_size,
            "max_tokens": report.max_tokens,
            "files": report.clamped,
        }
        msg += (
            f"; chunk_size={chunk_size} characters does not fit the embedding model's window of "
            f"{report.max_tokens} tokens: {sum(report.clamped.values())} chunks of "
            f"{len(report.clamped)} files were cut to fit (data.chunk_size_clamped)"
        )
    return ok(msg, data)


@router.post("/delete_docs", openapi_extra=declare("kb_write"))
async def delete_docs(body: DeleteDocs, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    await run_in_threadpool(service.delete_files, kb, body.file_names, body.delete_content)
    await access.audit(
        "delete_docs", kb, file_names=body.file_names, delete_content=body.delete_content
    )
    return ok("文件删除完成", {"failed_files": {}})


@router.post("/update_docs", openapi_extra=declare("kb_write"))
async def update_docs(body: UpdateDocs, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance)
    given = custom_docs(body.docs)

    def run() -> list[str]:
        # As 0.2: files with given chunks store those; the others are re-split from their
        # stored file, except files whose chunks were given before, unless override_custom_docs.
        split = [
            name
            for name in body.file_names
            if name not in given
            and (body.override_custom_docs or not service.has_custom_chunks(kb, name))
        ]
        updated = [name for name, _ in service.reingest_stored(kb, split, params)]
        if given:
            service.replace_chunks(kb, given)
        return updated + [name for name in given if name not in updated]

    updated = await run_in_threadpool(run)
    await access.audit("update_docs", kb, updated_files=updated)
    return ok("更新文档完成", {"failed_files": {}, "updated_files": updated})


@router.post("/update_docs_by_id", openapi_extra=declare("kb_write"))
async def update_docs_by_id(body: UpdateDocsById, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    docs: dict[int, str | None] = {}
    for key, doc in body.docs.items():
        if not key.strip().isdigit():
            raise ServiceError(400, f"document id {key!r} is not one this service gave out")
        text = None if doc is None else doc.get("page_content")
        if text is not None and not isinstance(text, str):
            raise ServiceError(400, f"docs[{key!r}].page_content must be a string")
        docs[int(key)] = text
    files = await run_in_threadpool(service.update_chunks_by_id, kb, docs)
    await access.audit("update_docs_by_id", kb, updated_files=files)
    return ok("文档更新成功", {"updated_files": files})


@router.post("/update_info", openapi_extra=declare("kb_write"))
async def update_info(body: UpdateInfo, service: ServiceDep, access: AccessDep) -> dict:
    kb = await access.check(body.knowledge_base_name, KbRole.editor)
    await run_in_threadpool(service.set_kb_info, kb, body.kb_info)
    await access.audit("update_info", kb)
    return ok("知识库介绍修改完成", {"kb_info": body.kb_info})


@router.get("/download_doc", openapi_extra=declare("kb_read"))
async def download_doc(
    service: ServiceDep,
    access: AccessDep,
    knowledge_base_name: str = Query(...),
    file_name: str = Query(...),
    preview: bool = False,
) -> FileResponse:
    kb = await access.check(knowledge_base_name, KbRole.reader)
    path = await run_in_threadpool(service.file_path, kb, file_name)
    return FileResponse(
        path, filename=file_name, content_disposition_type="inline" if preview else "attachment"
    )


# Files a rebuild re-embeds from their stored chunks in one go (bulk imports, see below).
REEMBED_FILES = 32


@router.post("/recreate_vector_store", openapi_extra=declare("kb_write"))
async def recreate_vector_store(
    body: RecreateVectorStore, service: ServiceDep, access: AccessDep
) -> EventSourceResponse:
    """0.2's rebuild: every file on the KB volume parsed, split and embedded anew, one event
    each. Files a bulk import stored have no original here: their stored chunks are embedded
    anew as they are (not re-split with the new chunk settings), one event each, first. Once
    all of those are re-embedded the KB is recorded as this service's embedding model's (see
    `KnowledgeService.embedding_kb`): a rebuild is how a KB follows a change of model, and one
    cut short leaves it refused (409) for search and uploads until a rebuild completes."""
    name = await access.check(body.knowledge_base_name, KbRole.editor)
    params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance).validate()
    files = await run_in_threadpool(service.stored_files, name)
    imported = await run_in_threadpool(service.imported_files, name)
    if not files and not imported and not body.allow_empty_kb:
        raise ServiceError(404, f"knowledge base {name!r} has no files")
    await run_in_threadpool(service.reset_vectors, name, imported)
    await access.audit("recreate_vector_store", name, files=files, imported=sorted(imported))
    total = len(files) + len(imported)

    async def progress() -> AsyncIterator[dict[str, Any]]:
        done = 0
        names = sorted(imported)
        failed = False
        for start in range(0, len(names), REEMBED_FILES):
            group = names[start : start + REEMBED_FILES]  # embedded together: full batches
            error: ServiceError | None = None
            try:
                await run_in_threadpool(service.reembed_stored, name, group)
            except ServiceError as exc:
                error = exc
                failed = True
            for file_name in group:
                done += 1
                import_id, source_path = imported[file_name]
                head = f"({done} / {total}): {file_name}"
                event = (
                    {"code": error.status, "msg": f"{head}: {error.message}"}
                    if error is not None
                    else {
                        "code": 200,
                        "msg": f"{head}: bulk-imported ({import_id!r}, {source_path!r}): its "
                        "stored chunks embedded anew, not re-split (re-run the import to re-split "
                        "it)",
                    }
                )
                yield {**event, "total": total, "finished": done, "doc": file_name}
        if not failed:
            # Every chunk left is now this model's; the re-ingest below adds only its own.
            await run_in_threadpool(service.finish_rebuild, name)
        for file_name in files:
            done += 1
            head = f"({done} / {total}): {file_name}"
            event = {"code": 200, "msg": head}
            try:
                path = await run_in_threadpool(service.file_path, name, file_name)
                stored = await run_in_threadpool(IncomingFile.from_path, file_name, path)
                await run_in_threadpool(
                    partial(service.ingest, name, [stored], params, rebuilding=True)
                )
            except ServiceError as exc:
                event = {"code": exc.status, "msg": f"{head}: {exc.message}"}
            yield {**event, "total": total, "finished": done, "doc": file_name}

    return sse(progress())
