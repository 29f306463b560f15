"""The API on 7861: the app factory that wires settings, stores, llm and routers together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from chat_server import metrics
from chat_server.access.authenticate import Authenticator
from chat_server.access.principal import declare
from chat_server.api import (
    access,
    chat,
    chat_extras,
    file_chat,
    health,
    imports,
    knowledge_base,
    llm_models,
    openai_compat,
    server_info,
)
from chat_server.api.deps import authorize
from chat_server.api.errors import install_error_handlers
from chat_server.api.limits import BodyLimit
from chat_server.kb.embeddings import Embedder
from chat_server.kb.service import KnowledgeService
from chat_server.kb.temp_docs import TempDocs
from chat_server.llm_client import LLMClient
from chat_server.logs import configure_logging
from chat_server.settings import Settings, get_settings

log = logging.getLogger("chat_server.api")
# Framework routes outside `authorize` (FastAPI's docs pages): they reveal no data.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def build_service(settings: Settings) -> KnowledgeService:
    embedder = Embedder(
        settings.embedding_model_path,
        settings.embedding_batch_size,
        device=settings.embedding_device,
        batch_tokens=settings.embedding_batch_tokens,
        threads=settings.embedding_threads,
    )
    return KnowledgeService.from_settings(settings, embedder)


def create_app(
    settings: Settings | None = None,
    service: KnowledgeService | None = None,
    llm: LLMClient | None = None,
) -> FastAPI:
    """The API. Without `service` it builds one at start-up (embedding model, stores)."""
    settings = settings or Settings()
    if settings.chat_api_key is None or not settings.chat_api_key.get_secret_value():
        raise ValueError("CHAT_API_KEY is not set: the API and the web UI need it as their key")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.service is None
        if owned:
            app.state.service = await run_in_threadpool(build_service, settings)
            app.state.authenticator.store = app.state.service.access_store()
            await run_in_threadpool(app.state.service.warm_keyword_indexes)
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
        # Every route of every router, present and future: the caller and the route's permission.
        dependencies=[Depends(authorize)],
    )
    app.state.settings = settings
    app.state.service = service
    app.state.authenticator = Authenticator(
        settings, service.access_store() if service is not None else None
    )
    app.state.llm = llm or LLMClient(
        settings.llm_base_url,
        settings.llm_api_key,
        settings.llm_model,
        settings.llm_timeout_s,
        settings.llm_connect_timeout_s,
    )
    app.state.temp_docs = TempDocs(settings.temp_docs_max, settings.temp_docs_ttl_s)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        multipart_limit=settings.max_request_bytes,
        other_limit=settings.max_json_body_bytes,
        path_limits={"/knowledge_base/import_shard": settings.import_shard_max_bytes},
    )

    @app.get("/", include_in_schema=False, openapi_extra=declare("public"))
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    for area in (
        health,
        knowledge_base,
        chat,
        chat_extras,
        file_chat,
        server_info,
        llm_models,
        openai_compat,
        access,
        imports,
    ):
        app.include_router(area.router)
    # outermost: every request counted once, with the route template the router matched
    app.add_middleware(metrics.RequestMetrics)
    metrics.prime(app.openapi()["paths"])
    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging()
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None)
