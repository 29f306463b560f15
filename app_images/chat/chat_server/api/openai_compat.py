"""OpenAI-compatible routes on `/v1`, answering from a knowledge base when asked.

An llm fault mid-stream ends the stream with OpenAI's `{"error": {...}}` event (the official
client raises `APIError` on it); before the first byte it is a 502/503 in OpenAI's error shape.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chat_server import prompts
from chat_server.api.answers import AnswerShape, Event, LLMCall, answer
from chat_server.api.deps import AUTH, LLMDep, ServiceDep, SettingsDep
from chat_server.api.errors import openai_error
from chat_server.api.knowledge_base import hits_to_docs
from chat_server.api.retrieval_fields import RetrievalFields
from chat_server.kb.service import SearchHit

router = APIRouter(prefix="/v1", dependencies=AUTH, tags=["OpenAI"])


class OpenAIMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class OpenAIChatRequest(RetrievalFields):
    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    knowledge_base_name: str | None = None
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)


@router.get("/models")
async def models(service: ServiceDep, settings: SettingsDep) -> dict:
    kbs = await run_in_threadpool(service.list_kbs)
    names = [settings.llm_model] + [f"kb:{k.name}" for k in kbs]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "owned_by": "chat"} for n in names],
    }


@router.post("/chat/completions")
async def chat_completions(
    body: OpenAIChatRequest, service: ServiceDep, settings: SettingsDep, llm: LLMDep
) -> Response:
    kb_name = body.knowledge_base_name
    model = body.model
    if model.startswith("kb:"):
        kb_name = kb_name or model[3:]
        model = settings.llm_model
    messages = [m.model_dump() for m in body.messages]
    hits: list[SearchHit] = []
    if kb_name:
        question = next((m.content for m in reversed(body.messages) if m.role == "user"), "")
        hits = await run_in_threadpool(
            service.search,
            kb_name,
            question,
            body.top_k,
            body.score_threshold,
            body.search_mode,
            body.rerank,
        )
        context = "\n".join(h.content for h in hits)
        messages[-1] = {
            "role": "user",
            "content": prompts.kb_prompt("default" if hits else "empty", context, question),
        }
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, str], finish: str | None) -> Event:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def whole(text: str) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "docs": hits_to_docs(hits),
        }

    shape = AnswerShape(
        piece=lambda token: chunk({"content": token}, None),
        whole=whole,
        fault=lambda exc: openai_error(exc.status, exc.message),
        before=[chunk({"role": "assistant", "content": ""}, None)],
        after=[chunk({}, "stop")],
        done="[DONE]",
        sep="\n",
        whole_as_event=False,
    )
    call = LLMCall(messages, model, body.temperature, body.max_tokens)
    return await answer(llm, call, body.stream, shape)
