"""HTTP API on 7861, compatible with Langchain-Chatchat 0.2's paths, fields and envelopes."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Body, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from chat_server import prompts
from chat_server.kb.embeddings import Embedder
from chat_server.kb.loaders import DocumentError
from chat_server.kb.service import (
    IncomingFile,
    KnowledgeBaseError,
    KnowledgeService,
    SearchHit,
    SplitParams,
)
from chat_server.llm_client import LLMClient, LLMUnavailable
from chat_server.logs import configure_logging
from chat_server.settings import Settings, get_settings

log = logging.getLogger("chat_server.api")


# -- request models (field names as Chatchat 0.2 clients send them) ----------------------------
class HistoryItem(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


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


class ChatRequest(BaseModel):
    query: str = Field(min_length=1)
    conversation_id: str | None = None
    history_len: int = -1
    history: list[HistoryItem] = Field(default_factory=list)
    stream: bool = False
    model_name: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    prompt_name: str = "default"


class KnowledgeBaseChatRequest(ChatRequest):
    knowledge_base_name: str
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)
    local_doc_url: bool = False


class OpenAIMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class OpenAIChatRequest(BaseModel):
    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    knowledge_base_name: str | None = None
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)


def ok(msg: str = "success", data: Any = None) -> dict[str, Any]:
    return {"code": 200, "msg": msg, "data": data}


def error_body(status: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": status, "msg": msg, "data": data, "detail": msg}


# -- helpers ----------------------------------------------------------------------------------
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


def source_references(request: Request, kb: str, hits: list[SearchHit]) -> list[str]:
    refs = []
    for n, hit in enumerate(hits, start=1):
        url = f"{request.base_url}knowledge_base/download_doc?" + urlencode(
            {"knowledge_base_name": kb, "file_name": hit.file_name}
        )
        refs.append(f"出处 [{n}] [{hit.file_name}]({url}) \n\n{hit.content}\n\n")
    return refs


def build_messages(history: list[HistoryItem], history_len: int, prompt: str) -> list[dict]:
    items = history if history_len < 0 else history[-history_len:] if history_len else []
    return [{"role": h.role, "content": h.content} for h in items] + [
        {"role": "user", "content": prompt}
    ]


async def read_upload(upload: UploadFile, limit: int) -> IncomingFile:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise DocumentError(
            413, f"file {upload.filename!r} is larger than the limit of {limit} bytes"
        )
    return IncomingFile(upload.filename or "", data)


def sse(events: AsyncIterator[dict[str, Any]]) -> EventSourceResponse:
    async def encoded() -> AsyncIterator[str]:
        async for event in events:
            yield json.dumps(event, ensure_ascii=False)

    return EventSourceResponse(encoded())


# -- application ------------------------------------------------------------------------------
def create_app(
    settings: Settings | None = None,
    service: KnowledgeService | None = None,
    llm: LLMClient | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.service is None
        if owned:
            embedder = await run_in_threadpool(
                Embedder, settings.embedding_model_path, settings.embedding_batch_size
            )
            app.state.service = await run_in_threadpool(
                KnowledgeService,
                embedder,
                settings.kb_root,
                settings.pg_conninfo if settings.pg_host else None,
                settings.default_vs_type,
            )
        log.info(
            "api ready", extra={"llm": settings.llm_base_url, "kb_root": str(settings.kb_root)}
        )
        yield
        if owned:
            app.state.service.close()

    app = FastAPI(
        title="chat: knowledge-base chat API",
        version="1.0.0",
        description="Langchain-Chatchat 0.2 compatible knowledge-base chatbot API",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.llm = llm or LLMClient(
        settings.llm_base_url,
        settings.llm_api_key,
        settings.llm_model,
        settings.llm_timeout_s,
        settings.llm_connect_timeout_s,
    )
    bearer = HTTPBearer(auto_error=False)

    def require_key(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.chat_api_key and (creds is None or creds.credentials != settings.chat_api_key):
            raise HTTPException(401, "missing or wrong API key: send Authorization: Bearer <key>")

    def svc() -> KnowledgeService:
        return app.state.service

    def llm_client() -> LLMClient:
        return app.state.llm

    @app.exception_handler(KnowledgeBaseError)
    @app.exception_handler(DocumentError)
    async def bad_input(_: Request, exc: KnowledgeBaseError | DocumentError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message), status_code=exc.status)

    @app.exception_handler(LLMUnavailable)
    async def llm_down(_: Request, exc: LLMUnavailable) -> JSONResponse:
        log.warning("llm unavailable", extra={"error": str(exc)})
        return JSONResponse(error_body(503, str(exc)), status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(
            {
                "code": 422,
                "msg": f"invalid request: {problems}",
                "data": None,
                "detail": json.loads(json.dumps(exc.errors(), default=str)),
            },
            status_code=422,
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health")
    async def health() -> JSONResponse:
        service = app.state.service
        ready = service is not None
        llm_ok = await llm_client().reachable()
        body = {
            "status": "ok" if ready else "starting",
            "knowledge_base": "ok" if ready else "loading",
            "embedding_model": service.embedder.name if ready else None,
            "llm": "ok" if llm_ok else "unreachable",
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    kb = "/knowledge_base"
    auth = [Depends(require_key)]

    @app.get(f"{kb}/list_knowledge_bases", dependencies=auth, tags=["Knowledge Base"])
    async def list_knowledge_bases() -> dict:
        kbs = await run_in_threadpool(svc().list_kbs)
        return ok(data=[k.name for k in kbs])

    @app.post(f"{kb}/create_knowledge_base", dependencies=auth, tags=["Knowledge Base"])
    async def create_knowledge_base(body: CreateKnowledgeBase) -> dict:
        await run_in_threadpool(
            svc().create_kb, body.knowledge_base_name, body.vector_store_type, body.embed_model
        )
        return ok(f"已新增知识库 {body.knowledge_base_name}")

    @app.post(f"{kb}/delete_knowledge_base", dependencies=auth, tags=["Knowledge Base"])
    async def delete_knowledge_base(body: Any = Body(..., examples=["samples"])) -> dict:
        # Chatchat's client posts the bare name as a JSON string; accept an object too.
        name = body.get("knowledge_base_name") if isinstance(body, dict) else body
        if not isinstance(name, str):
            raise KnowledgeBaseError(400, "body must be the knowledge base name as a JSON string")
        await run_in_threadpool(svc().delete_kb, name)
        return ok(f"成功删除知识库 {name}")

    @app.get(f"{kb}/list_files", dependencies=auth, tags=["Knowledge Base"])
    async def list_files(knowledge_base_name: str = Query(...)) -> dict:
        files = await run_in_threadpool(svc().list_files, knowledge_base_name)
        return ok(data=[f.file_name for f in files])

    @app.post(f"{kb}/search_docs", dependencies=auth, tags=["Knowledge Base"])
    async def search_docs(body: SearchDocs) -> list[dict]:
        hits = await run_in_threadpool(
            svc().search, body.knowledge_base_name, body.query, body.top_k, body.score_threshold
        )
        if body.file_name:
            hits = [h for h in hits if h.file_name == body.file_name]
        return hits_to_docs(hits)

    @app.post(f"{kb}/upload_docs", dependencies=auth, tags=["Knowledge Base"])
    async def upload_docs(
        files: list[UploadFile] = File(..., description="documents to add"),
        knowledge_base_name: str = Form(...),
        override: bool = Form(False),
        to_vector_store: bool = Form(True),
        chunk_size: int = Form(settings.chunk_size),
        chunk_overlap: int = Form(settings.chunk_overlap),
        zh_title_enhance: bool = Form(False),
        docs: str = Form(""),
        not_refresh_vs_cache: bool = Form(False),
    ) -> dict:
        incoming = [await read_upload(f, settings.max_upload_bytes) for f in files]
        report = await run_in_threadpool(
            svc().ingest,
            knowledge_base_name,
            incoming,
            SplitParams(chunk_size, chunk_overlap, zh_title_enhance),
            override,
            to_vector_store,
        )
        return ok(
            "文件上传与向量化完成",
            {
                "failed_files": {},
                "embedded_files": report.embedded_files,
                "unchanged_files": report.unchanged_files,
                "chunks": report.chunks,
            },
        )

    @app.post(f"{kb}/delete_docs", dependencies=auth, tags=["Knowledge Base"])
    async def delete_docs(body: DeleteDocs) -> dict:
        await run_in_threadpool(
            svc().delete_files, body.knowledge_base_name, body.file_names, body.delete_content
        )
        return ok("文件删除完成", {"failed_files": {}})

    @app.post(f"{kb}/update_docs", dependencies=auth, tags=["Knowledge Base"])
    async def update_docs(body: UpdateDocs) -> dict:
        params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance)

        def run() -> list[str]:
            return [
                name
                for name, _ in svc().reingest_stored(
                    body.knowledge_base_name, body.file_names, params
                )
            ]

        updated = await run_in_threadpool(run)
        return ok("更新文档完成", {"failed_files": {}, "updated_files": updated})

    @app.get(f"{kb}/download_doc", dependencies=auth, tags=["Knowledge Base"])
    async def download_doc(
        knowledge_base_name: str = Query(...), file_name: str = Query(...), preview: bool = False
    ) -> FileResponse:
        path = await run_in_threadpool(svc().file_path, knowledge_base_name, file_name)
        return FileResponse(
            path, filename=file_name, content_disposition_type="inline" if preview else "attachment"
        )

    @app.post(f"{kb}/recreate_vector_store", dependencies=auth, tags=["Knowledge Base"])
    async def recreate_vector_store(body: RecreateVectorStore) -> EventSourceResponse:
        service = svc()
        name = body.knowledge_base_name
        params = SplitParams(body.chunk_size, body.chunk_overlap, body.zh_title_enhance).validate()
        files = await run_in_threadpool(service.stored_files, name)
        if not files and not body.allow_empty_kb:
            raise KnowledgeBaseError(404, f"knowledge base {name!r} has no files")
        await run_in_threadpool(service.reset_vectors, name)

        async def progress() -> AsyncIterator[dict[str, Any]]:
            for i, file_name in enumerate(files, start=1):
                try:
                    path = service.file_path(name, file_name)
                    data = await run_in_threadpool(path.read_bytes)
                    await run_in_threadpool(
                        service.ingest, name, [IncomingFile(file_name, data)], params
                    )
                except (DocumentError, KnowledgeBaseError) as exc:
                    yield {
                        "code": exc.status,
                        "msg": f"({i} / {len(files)}): {file_name}: {exc.message}",
                        "total": len(files),
                        "finished": i,
                        "doc": file_name,
                    }
                    continue
                yield {
                    "code": 200,
                    "msg": f"({i} / {len(files)}): {file_name}",
                    "total": len(files),
                    "finished": i,
                    "doc": file_name,
                }

        return sse(progress())

    # -- chat ---------------------------------------------------------------------------------
    @app.post("/chat/chat", dependencies=auth, tags=["Chat"])
    async def chat(body: ChatRequest) -> EventSourceResponse:
        message_id = body.conversation_id or uuid.uuid4().hex
        messages = build_messages(
            body.history, body.history_len, prompts.llm_prompt(body.prompt_name, body.query)
        )
        client = llm_client()
        if body.stream:
            tokens = await client.stream(
                messages, body.model_name, body.temperature, body.max_tokens
            )

            async def events() -> AsyncIterator[dict[str, Any]]:
                async for token in tokens:
                    yield {"text": token, "message_id": message_id}

            return sse(events())
        text = await client.complete(messages, body.model_name, body.temperature, body.max_tokens)

        async def single() -> AsyncIterator[dict[str, Any]]:
            yield {"text": text, "message_id": message_id}

        return sse(single())

    async def retrieve(name: str, query: str, top_k: int, threshold: float) -> list[SearchHit]:
        return await run_in_threadpool(svc().search, name, query, top_k, threshold)

    @app.post("/chat/knowledge_base_chat", dependencies=auth, tags=["Chat"])
    async def knowledge_base_chat(body: KnowledgeBaseChatRequest, request: Request):
        hits = await retrieve(
            body.knowledge_base_name, body.query, body.top_k, body.score_threshold
        )
        context = "\n".join(h.content for h in hits)
        prompt_name = body.prompt_name if hits else "empty"
        messages = build_messages(
            body.history, body.history_len, prompts.kb_prompt(prompt_name, context, body.query)
        )
        docs = source_references(request, body.knowledge_base_name, hits)
        if not docs:
            docs = ["<span style='color:red'>未找到相关文档,该回答为大模型自身能力解答！</span>"]
        client = llm_client()
        if body.stream:
            tokens = await client.stream(
                messages, body.model_name, body.temperature, body.max_tokens
            )

            async def events() -> AsyncIterator[dict[str, Any]]:
                async for token in tokens:
                    yield {"answer": token}
                yield {"docs": docs}

            return sse(events())
        answer = await client.complete(messages, body.model_name, body.temperature, body.max_tokens)

        async def single() -> AsyncIterator[dict[str, Any]]:
            yield {"answer": answer, "docs": docs}

        return sse(single())

    # -- OpenAI-compatible ----------------------------------------------------------------------
    @app.get("/v1/models", dependencies=auth, tags=["OpenAI"])
    async def models() -> dict:
        kbs = await run_in_threadpool(svc().list_kbs)
        names = [settings.llm_model] + [f"kb:{k.name}" for k in kbs]
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "owned_by": "chat"} for n in names],
        }

    @app.post("/v1/chat/completions", dependencies=auth, tags=["OpenAI"])
    async def chat_completions(body: OpenAIChatRequest):
        kb_name = body.knowledge_base_name
        model = body.model
        if model.startswith("kb:"):
            kb_name = kb_name or model[3:]
            model = settings.llm_model
        messages = [m.model_dump() for m in body.messages]
        hits: list[SearchHit] = []
        if kb_name:
            question = next((m.content for m in reversed(body.messages) if m.role == "user"), "")
            hits = await retrieve(kb_name, question, body.top_k, body.score_threshold)
            context = "\n".join(h.content for h in hits)
            messages[-1] = {
                "role": "user",
                "content": prompts.kb_prompt("default" if hits else "empty", context, question),
            }
        client = llm_client()
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        docs = hits_to_docs(hits)
        if body.stream:
            tokens = await client.stream(messages, model, body.temperature, body.max_tokens)

            async def chunks() -> AsyncIterator[str]:
                def chunk(delta: dict, finish: str | None) -> str:
                    return json.dumps(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": body.model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        },
                        ensure_ascii=False,
                    )

                yield chunk({"role": "assistant", "content": ""}, None)
                async for token in tokens:
                    yield chunk({"content": token}, None)
                yield chunk({}, "stop")
                yield "[DONE]"

            return EventSourceResponse(chunks(), sep="\n")
        answer = await client.complete(messages, model, body.temperature, body.max_tokens)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "docs": docs,
        }

    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging()
    uvicorn.run(create_app(settings), host="0.0.0.0", port=7861, log_config=None)


if __name__ == "__main__":
    main()
