"""One way to answer from the llm, streamed or whole, for every endpoint that chats.

Each endpoint says only how its events look (`AnswerShape`); the helper opens the llm, turns
a fault before the first byte into an HTTP error and a fault mid-stream into an error event
the client can tell apart from an answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse

from chat_server.errors import ServiceError
from chat_server.llm_client import LLMClient

log = logging.getLogger("chat_server.api")
Event = dict[str, Any]


@dataclass(frozen=True)
class LLMCall:
    messages: list[dict[str, str]]
    model: str | None
    temperature: float
    max_tokens: int | None


@dataclass(frozen=True)
class AnswerShape:
    """How one endpoint's answer looks on the wire."""

    piece: Callable[[str], Event]  # one streamed token
    whole: Callable[[str], Event]  # the full answer when not streamed
    fault: Callable[[ServiceError], Event]  # what a stream ends with when the llm fails
    before: list[Event] = field(default_factory=list)
    after: list[Event] = field(default_factory=list)
    done: str | None = None  # a last data line after a complete stream (OpenAI's "[DONE]")
    sep: str | None = None  # SSE line separator; sse-starlette's "\r\n" when None
    whole_as_event: bool = True  # 0.2 sends a whole answer as one SSE event; OpenAI as JSON
    # OpenAI only: the key of the whole answer that gets the llm's token counts, and the last
    # chunk of a stream that carries them (`stream_options.include_usage`; the llm is asked).
    usage_key: str | None = None
    usage_chunk: Callable[[dict[str, int] | None], Event] | None = None


def dumps(event: Event) -> str:
    return json.dumps(event, ensure_ascii=False)


def sse(events: AsyncIterator[Event], sep: str | None = None) -> EventSourceResponse:
    async def encoded() -> AsyncIterator[str]:
        async for event in events:
            yield dumps(event)

    return EventSourceResponse(encoded(), sep=sep)


async def answer(llm: LLMClient, call: LLMCall, stream: bool, shape: AnswerShape) -> Response:
    args = (call.messages, call.model, call.temperature, call.max_tokens)
    if not stream:
        reply = await llm.reply(*args)
        text = reply.text
        if not shape.whole_as_event:
            whole = shape.whole(text)
            if shape.usage_key is not None:
                whole[shape.usage_key] = reply.usage
            return JSONResponse(whole)

        async def single() -> AsyncIterator[Event]:
            yield shape.whole(text)

        return sse(single(), shape.sep)

    tokens = await llm.stream(*args, include_usage=shape.usage_chunk is not None)

    async def events() -> AsyncIterator[str]:
        for event in shape.before:
            yield dumps(event)
        try:
            async for token in tokens:
                yield dumps(shape.piece(token))
        except ServiceError as exc:
            log.warning("llm stream failed", extra={"status": exc.status, "error": exc.message})
            yield dumps(shape.fault(exc))
            return
        for event in shape.after:
            yield dumps(event)
        if shape.usage_chunk is not None:
            yield dumps(shape.usage_chunk(tokens.usage))
        if shape.done is not None:
            yield shape.done

    return EventSourceResponse(events(), sep=shape.sep)
