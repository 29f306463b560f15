"""Liveness (`/health`: the process answers), readiness (`/ready`: it can serve requests) and
the Prometheus metrics (`/metrics`, see `chat_server.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from chat_server import metrics as chat_metrics
from chat_server.access.principal import declare
from chat_server.api.deps import LLMDep, SettingsDep
from chat_server.kb.service import KnowledgeService

router = APIRouter(tags=["Health"])


@router.get("/health", openapi_extra=declare("public"))
async def health(request: Request, llm: LLMDep) -> JSONResponse:
    """Liveness: 200 once the knowledge-base side has loaded, whatever its database does."""
    service: KnowledgeService | None = request.app.state.service
    ready = service is not None
    llm_ok = await llm.reachable()
    body = {
        "status": "ok" if ready else "starting",
        "knowledge_base": "ok" if ready else "loading",
        "embedding_model": service.embedder.name if service is not None else None,
        "llm": "ok" if llm_ok else "unreachable",
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/ready", openapi_extra=declare("public"))
async def ready(request: Request, settings: SettingsDep) -> JSONResponse:
    """Readiness: false while loading, and while PostgreSQL is down when it is the default store.

    With faiss as the default store a PostgreSQL outage is reported but the pod stays ready:
    faiss knowledge bases keep answering.
    """
    service: KnowledgeService | None = request.app.state.service
    if service is None:
        body = {"ready": False, "knowledge_base": "loading", "database": "unknown"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    database = await run_in_threadpool(service.database_status) or "not configured"
    needs_db = settings.default_vs_type in ("adb", "pg")
    is_ready = database == "ok" or not needs_db
    body = {"ready": is_ready, "knowledge_base": "ok", "database": database}
    headers = None if is_ready else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if is_ready else 503, headers=headers)


@router.get("/metrics", openapi_extra=declare("public"))
async def metrics() -> Response:
    """Prometheus metrics: counts by route template and status, no names or contents (public,
    as the llm's: the managed Prometheus agent scrapes without credentials)."""
    body, content_type = chat_metrics.exposition()
    return Response(body, media_type=content_type)
