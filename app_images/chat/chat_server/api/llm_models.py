"""Chatchat 0.2's `/llm_model/*`, reporting the model the llm service serves.

The model is read from the llm service's `/v1/models` (0.2 asked its FastChat controller);
each entry is described in 0.2's config shape. Stopping or switching the model is the
deployment's business (the stack sets the llm's model): those routes answer a clear error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chat_server import metrics
from chat_server.access.principal import declare
from chat_server.api.deps import AUTH, LLMDep, SettingsDep
from chat_server.api.errors import envelope
from chat_server.api.knowledge_base import ok
from chat_server.errors import ServiceError, UpstreamError
from chat_server.llm_client import LLMUnavailable
from chat_server.settings import Settings

router = APIRouter(prefix="/llm_model", dependencies=AUTH, tags=["LLM Model Management"])


class ConfigModels(BaseModel):
    types: list[str] = ["local", "online"]
    placeholder: str | None = None


class ModelName(BaseModel):
    model_name: str | None = None
    placeholder: str | None = None


def model_config(entry: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One served model in 0.2's config shape (no keys, no secrets)."""
    return {
        "model_name": entry["id"],
        "online_api": False,  # 0.2's web UI treats a model with online_api as a remote API
        "api_base_url": settings.llm_base_url,
        "max_model_len": entry.get("max_model_len"),
        "owned_by": entry.get("owned_by"),
        "managed_by": "deployment",
    }


async def served(llm: LLMDep, settings: Settings) -> dict[str, dict[str, Any]]:
    return {m["id"]: model_config(m, settings) for m in await llm.served_models()}


def unavailable(exc: UpstreamError, request: Request) -> JSONResponse:
    if isinstance(exc, LLMUnavailable):
        metrics.llm_unavailable(request.scope)
    # 0.2 answered `data: {}` here, which its web UI iterates: keep it a dict.
    body = {**envelope(exc.status, exc.message), "data": {}}
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


@router.post("/list_running_models", openapi_extra=declare("signed_in"))
async def list_running_models(
    request: Request, llm: LLMDep, settings: SettingsDep, body: Any = Body(None)
) -> Any:
    try:
        return ok(data=await served(llm, settings))
    except UpstreamError as exc:
        return unavailable(exc, request)


@router.post("/list_config_models", openapi_extra=declare("signed_in"))
async def list_config_models(
    request: Request, body: ConfigModels, llm: LLMDep, settings: SettingsDep
) -> Any:
    try:
        models = await served(llm, settings)
    except UpstreamError as exc:
        return unavailable(exc, request)
    kinds: dict[str, dict[str, Any]] = {"local": models, "online": {}, "worker": {}}
    return ok(data={k: v for k, v in kinds.items() if k in body.types})


@router.post("/get_model_config", openapi_extra=declare("signed_in"))
async def get_model_config(
    request: Request, body: ModelName, llm: LLMDep, settings: SettingsDep
) -> Any:
    try:
        models = await served(llm, settings)
    except UpstreamError as exc:
        return unavailable(exc, request)
    name = body.model_name or next(iter(models), None)
    if name not in models:
        msg = f"model {name!r} is not served here; the llm serves {list(models)}"
        return JSONResponse({**envelope(404, msg), "data": {}}, status_code=404)
    return ok(data=models[name])


def managed(action: str) -> ServiceError:
    return ServiceError(
        409,
        f"cannot {action} the llm model: it is managed by the deployment (the stack sets the "
        "llm service's model; change it there and redeploy)",
    )


@router.post("/stop", openapi_extra=declare("admin"))
async def stop_llm_model(body: Any = Body(None)) -> None:
    raise managed("stop")


@router.post("/change", openapi_extra=declare("admin"))
async def change_llm_model(body: Any = Body(None)) -> None:
    raise managed("change")
