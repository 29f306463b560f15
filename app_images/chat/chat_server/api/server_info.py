"""Chatchat 0.2's `/server/*` and `/other/embed_texts`, answered by what this service has.

`/server/configs` answers a bare object of 0.2's keys (0.2 did not wrap it in the envelope),
`/server/get_prompt_template` a bare JSON string (0.2's client reads the body text).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chat_server import prompts
from chat_server.access.principal import declare
from chat_server.api.deps import AUTH, ServiceDep, SettingsDep
from chat_server.api.knowledge_base import ok
from chat_server.api.openai_compat import MAX_EMBED_INPUTS
from chat_server.errors import ServiceError
from chat_server.kb.splitter import SEPARATORS

router = APIRouter(dependencies=AUTH, tags=["Server State"])
log = logging.getLogger("chat_server.api")

PromptType = Literal["llm_chat", "knowledge_base_chat", "search_engine_chat", "agent_chat"]
# The prompts this service uses, by 0.2's type names; search engine and agent chat do not exist.
PROMPT_TEMPLATES: dict[str, dict[str, str]] = {
    "llm_chat": prompts.LLM_PROMPTS,
    "knowledge_base_chat": prompts.KB_PROMPTS,
}
HISTORY_LEN = 3  # 0.2's default, for clients that read it from here


class EmbedTexts(BaseModel):
    texts: list[str] = Field(max_length=MAX_EMBED_INPUTS)
    embed_model: str | None = None
    to_query: bool = False


@router.post("/server/configs", openapi_extra=declare("signed_in"))
async def server_configs(settings: SettingsDep, service: ServiceDep) -> dict[str, Any]:
    return {
        "DEFAULT_KNOWLEDGE_BASE": None,
        "DEFAULT_SEARCH_ENGINE": None,
        "DEFAULT_VS_TYPE": settings.default_vs_type,
        "CHUNK_SIZE": settings.chunk_size,
        "OVERLAP_SIZE": settings.chunk_overlap,
        "SCORE_THRESHOLD": settings.score_threshold,
        "VECTOR_SEARCH_TOP_K": settings.top_k,
        "SEARCH_ENGINE_TOP_K": None,
        "ZH_TITLE_ENHANCE": False,
        "TEXT_SPLITTER_NAME": "RecursiveCharacterTextSplitter",
        "text_splitter_dict": {
            "RecursiveCharacterTextSplitter": {
                "source": "langchain-text-splitters",
                "separators": SEPARATORS,
            }
        },
        "LLM_MODELS": [settings.llm_model],
        "EMBEDDING_MODEL": service.embedder.name,
        "HISTORY_LEN": HISTORY_LEN,
        "TEMPERATURE": 0.7,
        "PROMPT_TEMPLATES": PROMPT_TEMPLATES,
        "controller_address": None,
        "openai_api_address": settings.llm_base_url,
        "api_address": settings.api_base_url,
    }


@router.post("/server/list_search_engines", openapi_extra=declare("signed_in"))
async def list_search_engines() -> dict[str, Any]:
    return ok(data=[])  # no search engine is reachable from this deployment


@router.post("/server/get_prompt_template", openapi_extra=declare("signed_in"))
async def get_prompt_template(
    type: PromptType = Body("llm_chat"),  # noqa: A002 - 0.2's field name
    name: str = Body("default"),
) -> str:
    templates = PROMPT_TEMPLATES.get(type)
    if templates is None:
        raise ServiceError(
            404, f"there are no {type} prompts: {type.replace('_', ' ')} is not available here"
        )
    if name not in templates:
        raise ServiceError(404, f"no {type} prompt named {name!r}; there are {sorted(templates)}")
    return templates[name]


@router.post("/other/embed_texts", openapi_extra=declare("signed_in"))
async def embed_texts(body: EmbedTexts, service: ServiceDep) -> dict[str, Any]:
    embedder = service.embedder
    if body.embed_model and body.embed_model != embedder.name:
        # 0.2 clients send their own configured default; one model serves this deployment.
        log.warning(
            "embed_model ignored", extra={"requested": body.embed_model, "used": embedder.name}
        )
    vectors = await run_in_threadpool(embedder.encode, body.texts)
    return ok(data=vectors.tolist())
