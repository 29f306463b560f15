"""A stub OpenAI-compatible llm server: answers instantly, echoing the prompt it was given.

Asked for model `fault:<kind>` it misbehaves as a broken llm would (see FAULTS). Run it as its
own process with `python -m tests.stub_llm --port N`, so a test can kill it mid-answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette.sse import EventSourceResponse


def reply_for(messages: list[dict]) -> str:
    return "STUB ANSWER to: " + messages[-1]["content"]


FAULTS = (
    "drop",  # stream: two pieces, then the connection is dropped mid-body
    "hang",  # stream: two pieces, then silence (a test kills the process)
    "no-finish",  # stream: pieces, then a clean end without finish_reason or [DONE]
    "error-event",  # stream: a piece, then an OpenAI error event
    "bad-json",  # a body (or a stream event) that is not JSON
    "html",  # an HTML page with status 200
    "wrong-shape",  # JSON that is not a chat completion
    "empty-choices",  # a completion (or chunks) with `choices: []`
)


def usage(messages: list[dict], text: str) -> dict:
    """Token counts as the llm server reports them; a stub token is a whitespace-split word."""
    prompt = sum(len(str(m["content"]).split()) for m in messages)
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion(model: str, text: str, counts: dict | None = None) -> dict:
    message = {"role": "assistant", "content": text}
    return {
        "id": "cmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": counts,
    }


def chunk(model: str, delta: dict, finish: str | None = None, choices: bool = True, **extra) -> str:
    body = {
        "id": "cmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
        **extra,
    }
    return json.dumps(body)


def create_stub_llm() -> FastAPI:
    """A well-behaved llm, unless the requested model is `fault:<one of FAULTS>`."""
    app = FastAPI()
    app.state.requests = []

    @app.get("/v1/models")
    async def models() -> dict:
        # As app_images/llm serves it: the served model with its context length.
        entry = {"id": "stub", "object": "model", "owned_by": "chatchat", "max_model_len": 2048}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        model = body["model"]
        fault = model.removeprefix("fault:") if model.startswith("fault:") else None
        text = reply_for(body["messages"])
        pieces = [text[i : i + 16] for i in range(0, len(text), 16)]
        if not body.get("stream"):
            if fault == "bad-json":
                return Response('{"id": "cmpl-stub", "choices": [', media_type="application/json")
            if fault == "html":
                return HTMLResponse("<html><body>502 Bad Gateway</body></html>")
            if fault == "wrong-shape":
                return {"result": text}
            if fault == "empty-choices":
                return {**completion(model, text), "choices": []}
            return completion(model, text, usage(body["messages"], text))

        async def chunks() -> AsyncIterator[str]:
            if fault == "bad-json":
                yield '{"id": "cmpl-stub", "choices": [{'
                return
            if fault == "empty-choices":
                for _ in pieces:
                    yield chunk(model, {}, choices=False)
                yield "[DONE]"
                return
            cut = min(2, len(pieces) - 1)  # mid-answer, however short the answer
            for n, piece in enumerate(pieces):
                if n == cut and fault in ("drop", "hang"):
                    if fault == "hang":
                        await asyncio.sleep(120)
                    raise ConnectionAbortedError("stub llm drops the connection mid-answer")
                if n == 1 and fault == "error-event":
                    yield json.dumps({"error": {"message": "CUDA out of memory", "code": 500}})
                    return
                yield chunk(model, {"content": piece})
            if fault == "no-finish":
                return
            yield chunk(model, {}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                yield chunk(model, {}, choices=False, usage=usage(body["messages"], text))
            yield "[DONE]"

        return EventSourceResponse(chunks(), sep="\n")

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                log_config=None,
                timeout_graceful_shutdown=2,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_stub_llm(), host="127.0.0.1", port=args.port, log_level="warning")
