"""OpenAI-compatible routes on `/v1`: chat answering from a knowledge base when asked (content
as a string or as text parts, the llm's own usage counts, `stream_options.include_usage`) and
`/v1/embeddings` with the deployment's embedding model. Errors have OpenAI's shape (errors.py).

An llm fault mid-stream ends the stream with OpenAI's `{"error": {...}}` event (the official
client raises `APIError` on it); before the first byte it is a 502/503 in OpenAI's error shape.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from chat_server import prompts
from chat_server.access.principal import KbRole, declare
from chat_server.api.answers import AnswerShape, Event, LLMCall, answer
from chat_server.api.deps import AccessDep, LLMDep, ServiceDep, SettingsDep
from chat_server.api.errors import openai_error
from chat_server.api.knowledge_base import hits_to_docs
from chat_server.api.retrieval_fields import RetrievalFields
from chat_server.errors import ServiceError
from chat_server.kb.service import SearchHit

router = APIRouter(prefix="/v1", tags=["OpenAI"])
# Texts in one /v1/embeddings or /other/embed_texts request (OpenAI's own limit is 2048).
MAX_EMBED_INPUTS = 2048


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """A part this deployment cannot read (image_url, input_audio, file): refused by name."""

    model_config = ConfigDict(extra="allow")
    type: str


class OpenAIMessage(BaseModel):
    # "developer" is OpenAI's newer name for the system role.
    role: Literal["system", "developer", "user", "assistant"]
    # A string, or a list of content parts (`[{"type": "text", "text": ...}]`), as OpenAI takes.
    content: str | list[TextPart | OtherPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        for part in self.content:
            if not isinstance(part, TextPart):
                raise ServiceError(
                    400,
                    f"content part of type {part.type!r} is not supported: the llm of this "
                    "deployment reads text parts ({'type': 'text', 'text': ...}) only",
                )
        # Text parts are joined by a newline, as vLLM's OpenAI server joins them.
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def llm_message(self) -> dict[str, str]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class StreamOptions(BaseModel):
    include_usage: bool = False


class OpenAIChatRequest(RetrievalFields):
    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    knowledge_base_name: str | None = None
    top_k: int = Field(default=3, ge=1, le=100)
    score_threshold: float = Field(default=1.0, ge=0.0, le=2.0)


class EmbeddingsRequest(BaseModel):
    model: str
    input: str | list[str] = Field(description="a text or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


@router.get("/models", openapi_extra=declare("kb_list"))
async def models(service: ServiceDep, settings: SettingsDep, access: AccessDep) -> dict:
    kbs = await run_in_threadpool(service.list_kbs)
    readable = await run_in_threadpool(access.readable, [k.name for k in kbs])
    names = [settings.llm_model, service.embedder.name] + [f"kb:{name}" for name in readable]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "owned_by": "chat"} for n in names],
    }


# Without a knowledge base any signed-in caller may chat; with one, the route checks its reader.
@router.post("/chat/completions", openapi_extra=declare("signed_in"))
async def chat_completions(
    body: OpenAIChatRequest,
    service: ServiceDep,
    settings: SettingsDep,
    llm: LLMDep,
    access: AccessDep,
) -> Response:
    kb_name = body.knowledge_base_name
    model = body.model
    if model.startswith("kb:"):
        kb_name = kb_name or model[3:]
        model = settings.llm_model
    messages = [m.llm_message() for m in body.messages]
    hits: list[SearchHit] = []
    if kb_name:
        kb_name = await access.check(kb_name, KbRole.reader)
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
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

    include_usage = body.stream_options is not None and body.stream_options.include_usage

    def chunk(delta: dict[str, str], finish: str | None) -> Event:
        event: Event = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:  # OpenAI: every chunk has `usage: null` but the last one
            event["usage"] = None
        return event

    def usage_chunk(usage: dict[str, int] | None) -> Event:
        return {**chunk({}, None), "choices": [], "usage": usage}

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
            "usage": None,  # the llm's token counts, filled in by `answer`
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
        usage_key="usage",
        usage_chunk=usage_chunk if include_usage else None,
    )
    call = LLMCall(messages, model, body.temperature, body.max_tokens)
    return await answer(llm, call, body.stream, shape)


@router.post("/embeddings", openapi_extra=declare("signed_in"))
async def embeddings(body: EmbeddingsRequest, service: ServiceDep) -> dict[str, Any]:
    """The deployment's embedding model (the one its knowledge bases use), in OpenAI's shape."""
    embedder = service.embedder
    if body.model != embedder.name:
        raise ServiceError(
            404,
            f"The model {body.model!r} does not exist; this deployment embeds with "
            f"{embedder.name!r}",
        )
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise ServiceError(
            400, f"dimensions={body.dimensions}: {embedder.name!r} makes {embedder.dim}-d vectors"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or any(not t for t in texts):
        raise ServiceError(400, "input must be a non-empty text or a list of non-empty texts")
    if len(texts) > MAX_EMBED_INPUTS:
        raise ServiceError(
            400, f"input has {len(texts)} texts; at most {MAX_EMBED_INPUTS} in one request"
        )
    counts = await run_in_threadpool(embedder.token_counts, texts)
    window = embedder.max_tokens
    too_long = [i for i, n in enumerate(counts) if window is not None and n > window]
    if too_long:
        raise ServiceError(
            400,
            f"input {too_long[0]} has {counts[too_long[0]]} tokens; {embedder.name!r} reads at "
            f"most {window} (texts over it are refused, not cut)",
        )
    vectors = await run_in_threadpool(embedder.encode, texts)
    tokens = sum(counts)

    def encoded(vector: Any) -> list[float] | str:
        if body.encoding_format == "base64":  # little-endian float32, as OpenAI sends it
            return base64.b64encode(vector.astype("<f4").tobytes()).decode()
        return [float(x) for x in vector]

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encoded(v)}
            for i, v in enumerate(vectors)
        ],
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
