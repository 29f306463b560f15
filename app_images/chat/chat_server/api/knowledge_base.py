"""Knowledge-base routes: Chatchat 0.2's `/knowledge_base/*` paths, fields and envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from chat_server.api.answers import sse
from chat_server.api.deps import AUTH, ServiceDep, SettingsDep
from chat_server.api.uploads import SpoolingRoute, read_uploads
from chat_server.errors import ServiceError
from chat_server.kb.service import IncomingFile, SearchHit, SplitParams
from chat_server.settings import Settings

# SpoolingRoute: uploaded files go to spool files on local disk as they arrive (api.uploads).
router = APIRouter(
    prefix="/knowledge_base",
    dependencies=AUTH,
    tags=["Knowledge Base"],
    route_class=SpoolingRoute,
)
_DEFAULTS = Settings.model_fields


# -- request models (field names as Chatchat 0.2 clients send them) ----------------------------
class CreateKnowledgeBase(BaseModel):
    knowledge_base_name: str
    vector_store_type: str | None = None
    embed_model: str | None = None


class SearchDocs(BaseModel):
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


def hits_to_docs(hits: list[SearchHit]) -> list[dict[str, Any]]:
    return [
        {
            "page_content": h.content,
            "metadata": {"source": h.file_name},
            "type": "Document",
            "id": str(h.id),
            "score": round(h.score, 6),
        }
        for h in hits
    ]


@router.get("/list_knowledge_bases")
async def list_knowledge_bases(service: ServiceDep) -> dict:
    kbs = await run_in_threadpool(service.list_kbs)
    return ok(data=[k.name for k in kbs])


@router.post("/create_knowledge_base")
async def create_knowledge_base(body: CreateKnowledgeBase, service: ServiceDep) -> dict:
    await run_in_threadpool(
        service.create_kb, body.knowledge_base_name, body.vector_store_type, body.embed_model
    )
    return ok(f"已新增知识库 {body.knowledge_base_name}")


@router.post("/delete_knowledge_base")
async def delete_knowledge_base(
    service: ServiceDep, body: Any = Body(..., examples=["samples"])
) -> dict:
    # Chatchat's client posts the bare name as a JSON string; accept an object too.
    name = body.get("knowledge_base_name") if isinstance(body, dict) else body
    if not isinstance(name, str):
        raise ServiceError(400, "body must be the knowledge base name as a JSON string")
    await run_in_threadpool(service.delete_kb, name)
    return ok(f"成功删除知识库 {name}")


@router.get("/list_files")
async def list_files(service: ServiceDep, knowledge_base_name: str = Query(...)) -> dict:
    files = await run_in_threadpool(service.list_files, knowledge_base_name)
    return ok(data=[f.file_name for f in files])


@router.post("/search_docs")
async def search_docs(body: SearchDocs, service: ServiceDep) -> list[dict]:
    hits = await run_in_threadpool(
        service.search, body.knowledge_base_name, body.query, body.top_k, body.score_threshold
    )
    if body.file_name:
        hits = [h for h in hits if h.file_name == body.file_name]
    return hits_to_docs(hits)


@router.post("/upload_docs")
async def upload_docs(
    service: ServiceDep,
    settings: SettingsDep,
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
    try:
        incoming = await read_uploads(files, settings)
        report = await run_in_threadpool(
            service.ingest,
            knowledge_base_name,
            incoming,
            SplitParams(chunk_size, chunk_overlap, zh_title_enhance),
            override,
            to_vector_store,
        )
    finally:
        for upload in files:  # the spool files go now, not after the response
            await upload.close()
    return ok(
        "文件上传与向量化完成",
        {
            "failed_files": {},
            "embedded_files": report.embedded_files,
            "unchanged_files": report.unchanged_files,
            "chunks": report.chunks,
        },
    )


@router.post("/delete_docs")
async def delete_docs(body: DeleteDocs, service: ServiceDep) -> dict:
    await run_in_threadpool(
        service.delete_files, body.knowledge_base_name, body.file_names, body.delete_content
    )
    return ok("文件删除完成", {"failed_files": {}})


@router.post("/update_docs")
async def update_docs(body: UpdateDocs, service: ServiceDep) -> dict:
    params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance)

    def run() -> list[str]:
        return [
            name
            for name, _ in service.reingest_stored(
                body.knowledge_base_name, body.file_names, params
            )
        ]

    updated = await run_in_threadpool(run)
    return ok("更新文档完成", {"failed_files": {}, "updated_files": updated})


@router.get("/download_doc")
async def download_doc(
    service: ServiceDep,
    knowledge_base_name: str = Query(...),
    file_name: str = Query(...),
    preview: bool = False,
) -> FileResponse:
    path = await run_in_threadpool(service.file_path, knowledge_base_name, file_name)
    return FileResponse(
        path, filename=file_name, content_disposition_type="inline" if preview else "attachment"
    )


@router.post("/recreate_vector_store")
async def recreate_vector_store(
    body: RecreateVectorStore, service: ServiceDep
) -> EventSourceResponse:
    name = body.knowledge_base_name
    params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance).validate()
    files = await run_in_threadpool(service.stored_files, name)
    if not files and not body.allow_empty_kb:
        raise ServiceError(404, f"knowledge base {name!r} has no files")
    await run_in_threadpool(service.reset_vectors, name)

    async def progress() -> AsyncIterator[dict[str, Any]]:
        for i, file_name in enumerate(files, start=1):
            event: dict[str, Any] = {"code": 200, "msg": f"({i} / {len(files)}): {file_name}"}
            try:
                path = await run_in_threadpool(service.file_path, name, file_name)
                stored = await run_in_threadpool(IncomingFile.from_path, file_name, path)
                await run_in_threadpool(service.ingest, name, [stored], params)
            except ServiceError as exc:
                event = {
                    "code": exc.status,
                    "msg": f"({i} / {len(files)}): {file_name}: {exc.message}",
                }
            yield {**event, "total": len(files), "finished": i, "doc": file_name}

    return sse(progress())
