"""Web UI on 8501: one static page plus a streaming proxy to the API on 7861.

The browser only talks to 8501; the proxy adds the API key, so it never reaches the browser.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from chat_server.logs import configure_logging
from chat_server.settings import Settings, get_settings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("chat_server.webui")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
}


def create_webui(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        headers = (
            {"Authorization": f"Bearer {settings.chat_api_key}"} if (settings.chat_api_key) else {}
        )
        app.state.http = httpx.AsyncClient(
            base_url=settings.api_base_url,
            headers=headers,
            timeout=httpx.Timeout(300.0, connect=5.0),
        )
        yield
        await app.state.http.aclose()

    app = FastAPI(title="chat web UI", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.api_route("/api/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def proxy(path: str, request: Request):
        http: httpx.AsyncClient = app.state.http
        upstream = http.build_request(
            request.method,
            f"/{path}",
            params=request.query_params,
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"
            },
            content=request.stream(),
        )
        try:
            response = await http.send(upstream, stream=True)
        except httpx.TransportError as exc:
            log.warning("api unreachable", extra={"error": str(exc)})
            return JSONResponse(
                {"code": 502, "msg": f"API at {settings.api_base_url} is unreachable: {exc}"},
                status_code=502,
            )
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(response.aclose),
        )

    return app


def main() -> None:
    import uvicorn

    configure_logging()
    uvicorn.run(create_webui(), host="0.0.0.0", port=8501, log_config=None)


if __name__ == "__main__":
    main()
