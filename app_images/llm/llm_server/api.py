"""The OpenAI-compatible HTTP API on 8888, the same whatever engine runs underneath."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .admission import Admission, QueueFullError
from .engines.base import Chunk, Engine, SamplingOptions
from .logs import log_event
from .metrics import ServerMetrics
from .schemas import ChatCompletionRequest, CompletionRequest, GenerationParams
from .settings import Settings

logger = logging.getLogger(__name__)
KNOWN_PATHS = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/health", "/metrics"}


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        # Retry-After on 429/503 tells clients (the openai client honours it) when to come back.
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


class ServerState:
    def __init__(self, engine: Engine, settings: Settings, served_model: str) -> None:
        self.engine = engine
        self.settings = settings
        self.served_model = served_model
        self.metrics = ServerMetrics()
        self.admission = Admission(
            settings.llm_max_concurrency, settings.llm_max_queue, self.metrics
        )
        self.loaded = False
        self.load_error: str | None = None
        self.draining = False
        self.created = int(time.time())


class _CountingMiddleware:
    """Pure ASGI middleware (keeps streaming and disconnects intact) counting status codes."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in KNOWN_PATHS else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self._state.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        return await self._app(scope, receive, counting_send)


def create_app(engine: Engine, settings: Settings, served_model: str) -> FastAPI:
    state = ServerState(engine, settings, served_model)

    async def load_model() -> None:
        started = time.monotonic()
        log_event(logger, "model_loading", model=served_model, engine=engine.kind)
        try:
            await asyncio.to_thread(engine.load)
        except Exception as exc:  # noqa: BLE001 - the pod must report it, not hang unready silently
            state.load_error = f"{type(exc).__name__}: {exc}"
            log_event(logger, "model_load_failed", logging.ERROR, error=state.load_error)
            return
        state.loaded = True
        state.metrics.model_loaded.set(1)
        log_event(
            logger,
            "model_loaded",
            model=served_model,
            engine=engine.kind,
            seconds=round(time.monotonic() - started, 2),
            context_length=engine.context_length,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        loader = asyncio.create_task(load_model())
        yield
        state.draining = True
        finished = await state.admission.wait_idle(settings.llm_shutdown_grace_s)
        log_event(logger, "shutdown", in_flight_finished=finished)
        loader.cancel()
        await engine.close()

    app = FastAPI(title="llm", lifespan=lifespan)
    app.state.server = state

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        param = ".".join(loc) or None
        text = f"{param}: {message}" if param else message
        return ApiError(400, text, param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), code=None).response()

    async def require_key(request: Request) -> None:
        expected = settings.llm_api_key
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.get_secret_value().encode()
        ):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def require_ready() -> None:
        if state.draining:
            raise ApiError(
                503,
                "The server is shutting down.",
                type="server_error",
                code="shutting_down",
                retry_after=settings.llm_retry_after_s,
            )
        if not state.loaded:
            detail = f": {state.load_error}" if state.load_error else "; try again shortly"
            raise ApiError(
                503,
                f"Model {served_model} is not loaded yet{detail}",
                type="server_error",
                code="model_not_ready",
                retry_after=settings.llm_retry_after_s,
            )

    @app.get("/health")
    async def health() -> JSONResponse:
        status = 503 if state.load_error else 200
        return JSONResponse(
            {
                "status": "error" if state.load_error else "ok",
                "model_loaded": state.loaded,
                "load_error": state.load_error,
            },
            status_code=status,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Not behind the API key: the kubelet's readiness probe cannot carry a secret header.
    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        require_ready()
        return {
            "object": "list",
            "data": [
                {
                    "id": served_model,
                    "object": "model",
                    "created": state.created,
                    "owned_by": "chatchat",
                    "max_model_len": engine.context_length,
                }
            ],
        }

    def check_request(params: GenerationParams) -> None:
        require_ready()
        if params.model != served_model:
            raise ApiError(
                404,
                f"The model `{params.model}` does not exist; this server serves `{served_model}`.",
                param="model",
                code="model_not_found",
            )
        refused = params.refused_field
        if refused:
            name, value = refused
            raise ApiError(
                400,
                f"{name}={json.dumps(value)} is not supported by this server ({engine.kind} "
                f"engine); remove {name} from the request",
                param=name,
                code="unsupported_parameter",
            )

    async def plan(params: GenerationParams, prompt: str) -> tuple[int, SamplingOptions]:
        # Tokenising a long prompt takes seconds of CPU: off the event loop, so /health,
        # /metrics and streams in flight keep answering meanwhile.
        prompt_tokens = await asyncio.to_thread(engine.count_tokens, prompt)
        room = engine.context_length - prompt_tokens
        wanted = params.requested_max_tokens
        if room < 1 or (wanted is not None and wanted > room):
            asked = wanted if wanted is not None else 1
            raise ApiError(
                400,
                f"This model's maximum context length is {engine.context_length} tokens. "
                f"However, you requested {prompt_tokens + asked} tokens ({prompt_tokens} in "
                f"the prompt, {asked} in the completion). Please reduce the prompt or "
                "max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        max_tokens = wanted if wanted is not None else min(settings.llm_default_max_tokens, room)
        return prompt_tokens, SamplingOptions(
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            ignore_eos=params.ignore_eos,
        )

    async def admit(request: Request) -> None:
        try:
            await _admit_unless_disconnected(request, state.admission)
        except QueueFullError as exc:
            raise ApiError(
                429,
                f"Too many requests: {exc}; retry later.",
                type="rate_limit_error",
                code="queue_full",
                retry_after=settings.llm_retry_after_s,
            ) from exc

    async def run(request: Request, params: GenerationParams, prompt: str, chat: bool) -> Any:
        arrived = time.monotonic()
        prompt_tokens, options = await plan(params, prompt)
        await admit(request)
        state.metrics.prompt_tokens.inc(prompt_tokens)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        chunks = _generate(engine, prompt, options, params.stop_strings)
        if params.stream:
            events = _sse_events(state, rid, chat, params, prompt_tokens, chunks, arrived)
            first = await anext(events)  # started now, so its `finally` always releases the slot
            return EventSourceResponse(
                _prepend(first, events),
                sep="\n",
                shutdown_grace_period=settings.llm_shutdown_grace_s,
            )
        try:
            text, completion_tokens, reason = await _unless_disconnected(
                request, _collect(state, chunks, arrived)
            )
        finally:
            state.admission.release()
        usage = _usage(prompt_tokens, completion_tokens)
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": reason,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": served_model,
            "choices": [choice],
            "usage": usage,
        }

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
        check_request(body)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        prompt = await asyncio.to_thread(engine.render_chat, messages)
        return await run(request, body, prompt, chat=True)

    @app.post("/v1/completions", dependencies=[Depends(require_key)])
    async def completions(request: Request, body: CompletionRequest) -> Any:
        check_request(body)
        return await run(request, body, body.prompt_text, chat=False)

    app.add_middleware(_CountingMiddleware, state=state)
    return app


async def _prepend(first: Any, rest: AsyncGenerator[Any, None]) -> AsyncIterator[Any]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def _generate(
    engine: Engine, prompt: str, options: SamplingOptions, stops: list[str]
) -> AsyncGenerator[Chunk, None]:
    """The engine's stream with stop strings applied (held back until they cannot match)."""
    source = engine.generate(prompt, options)
    hold = max((len(s) for s in stops), default=1) - 1
    held = ""
    try:
        async for chunk in source:
            held += chunk.text
            hits = [held.find(s) for s in stops if s in held]
            if hits:
                yield Chunk(held[: min(hits)], chunk.tokens, "stop")
                return
            if chunk.finish_reason:
                yield Chunk(held, chunk.tokens, chunk.finish_reason)
                return
            emit = held[: len(held) - hold] if hold else held
            held = held[len(emit) :]
            yield Chunk(emit, chunk.tokens)
    finally:
        await source.aclose()


async def _admit_unless_disconnected(request: Request, admission: Admission) -> None:
    """Wait for a generation slot; a client that hangs up while queued leaves the queue at once.

    The body has been read, so the next ASGI message is ``http.disconnect``: waiting on it is
    an event, not a poll, and the queued slot is given up the moment the socket closes.
    """
    acquire = asyncio.ensure_future(admission.acquire())
    hangup = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({acquire, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        if not acquire.done():
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquire
    if acquire.cancelled():
        raise ApiError(499, "client closed the request while queued", code="client_closed_request")
    acquire.result()  # re-raises QueueFullError
    if hangup.done() and not hangup.cancelled():  # both at once: give the fresh slot back
        admission.release()
        raise ApiError(499, "client closed the request while queued", code="client_closed_request")


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Await ``work``, cancelling it (and so the generation) if the client goes away."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ApiError(499, "client closed the request", code="client_closed_request")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _collect(
    state: ServerState, chunks: AsyncIterator[Chunk], arrived: float
) -> tuple[str, int, str]:
    parts: list[str] = []
    tokens = 0
    reason = "stop"
    try:
        async for chunk in chunks:
            if tokens == 0 and chunk.tokens:
                state.metrics.time_to_first_token.observe(time.monotonic() - arrived)
            tokens += chunk.tokens
            parts.append(chunk.text)
            reason = chunk.finish_reason or reason
    finally:
        state.metrics.completion_tokens.inc(tokens)
    return "".join(parts), tokens, reason


async def _sse_events(
    state: ServerState,
    rid: str,
    chat: bool,
    params: GenerationParams,
    prompt_tokens: int,
    chunks: AsyncGenerator[Chunk, None],
    arrived: float,
) -> AsyncGenerator[dict[str, str], None]:
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict:
        payload: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": state.served_model,
            "choices": choices,
        }
        if params.include_usage:
            payload["usage"] = usage
        return {"data": json.dumps(payload)}

    def choice(text: str, reason: str | None, first: bool = False) -> dict[str, Any]:
        if not chat:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text or first:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}

    tokens = 0
    finished = False
    try:
        yield event([choice("", None, first=True)])
        try:
            async for chunk in chunks:
                if tokens == 0 and chunk.tokens:
                    state.metrics.time_to_first_token.observe(time.monotonic() - arrived)
                tokens += chunk.tokens
                if chunk.text or chunk.finish_reason:
                    yield event([choice(chunk.text, chunk.finish_reason)])
        except Exception as exc:  # noqa: BLE001 - a broken generation ends the stream with an error event
            log_event(logger, "generation_failed", logging.ERROR, id=rid, error=str(exc))
            error = ApiError(500, f"generation failed: {exc}", type="server_error")
            yield {"data": json.dumps(error.body())}
            return
        if params.include_usage:
            yield event([], _usage(prompt_tokens, tokens))
        yield {"data": "[DONE]"}
        finished = True
    finally:
        state.metrics.completion_tokens.inc(tokens)
        state.admission.release()
        if not finished:
            log_event(logger, "stream_cancelled", id=rid, completion_tokens=tokens)
        await chunks.aclose()
