"""Web UI on 8501: one static page, a sign-in, and a streaming proxy to the API on 7861.

The API key is the sign-in credential. A signed session lives in an HttpOnly, SameSite=Strict
cookie; every state-changing call must also come from this origin (`Origin`/`Sec-Fetch-Site`)
and carry the session's CSRF token in `X-CSRF-Token`. The proxy adds the API key itself, so
the key never reaches the browser after sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from chat_server.api.deps import key_matches
from chat_server.api.errors import envelope
from chat_server.api.limits import BodyLimit
from chat_server.logs import configure_logging
from chat_server.settings import Settings, get_settings

STATIC = Path(__file__).parent / "static"
COOKIE = "chat_session"
CSRF_HEADER = "x-csrf-token"
log = logging.getLogger("chat_server.webui")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
}
# Never forwarded to the API: the browser's credentials are for this port only.
PRIVATE = {"authorization", "cookie", CSRF_HEADER}
PUBLIC_PATHS = frozenset({"/", "/healthz", "/login"})


class Login(BaseModel):
    api_key: str


class Sessions:
    """Stateless signed tokens `<expiry>.<nonce>.<mac>`, plus the nonces signed out here."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self.secret = secret
        self.ttl_s = ttl_s
        self.revoked: dict[str, float] = {}

    def _mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{int(time.time()) + self.ttl_s}.{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._mac('session:' + payload)}"

    def nonce(self, token: str | None) -> str | None:
        """The session's nonce when the token is genuine, unexpired and not signed out."""
        parts = (token or "").split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        expiry, nonce, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"session:{expiry}.{nonce}")):
            return None
        if int(expiry) < time.time() or nonce in self.revoked:
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)

    def revoke(self, nonce: str) -> None:
        now = time.time()
        self.revoked = {n: t for n, t in self.revoked.items() if t > now}
        self.revoked[nonce] = now + self.ttl_s


def session_secret(settings: Settings, api_key: str) -> bytes:
    if settings.webui_session_secret is not None:
        return settings.webui_session_secret.get_secret_value().encode()
    # Derived from the key, so every replica agrees and a new key signs everyone out.
    return hmac.new(api_key.encode(), b"chat-webui-session-v1", hashlib.sha256).digest()


def same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host')}"


def refuse(status: int, msg: str) -> JSONResponse:
    return JSONResponse(envelope(status, msg), status_code=status)


def create_webui(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.chat_api_key is None or not settings.chat_api_key.get_secret_value():
        raise ValueError("CHAT_API_KEY is not set: the web UI signs users in with it")
    api_key = settings.chat_api_key.get_secret_value()
    sessions = Sessions(session_secret(settings, api_key), settings.webui_session_ttl_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = httpx.AsyncClient(
            base_url=settings.api_base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(300.0, connect=5.0),
        )
        yield
        await app.state.http.aclose()

    app = FastAPI(title="chat web UI", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(
        BodyLimit,
        multipart_limit=settings.max_request_bytes,
        other_limit=settings.max_json_body_bytes,
    )

    @app.middleware("http")
    async def require_session(request: Request, call_next: Any) -> Response:
        if request.url.path in PUBLIC_PATHS:
            if request.method == "POST" and not same_origin(request):
                return refuse(403, "cross-origin request refused")
            response: Response = await call_next(request)
            return response
        nonce = sessions.nonce(request.cookies.get(COOKIE))
        if nonce is None:
            return refuse(401, "not signed in: sign in with the API key")
        if request.method not in ("GET", "HEAD"):
            token = request.headers.get(CSRF_HEADER, "")
            if not same_origin(request) or not hmac.compare_digest(token, sessions.csrf(nonce)):
                return refuse(403, "cross-origin request or missing CSRF token refused")
        request.state.nonce = nonce
        response = await call_next(request)
        return response

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/login")
    async def login(body: Login) -> Response:
        if not key_matches(body.api_key, api_key):
            log.warning("sign-in refused")
            return refuse(401, "wrong API key")
        token = sessions.issue()
        nonce = sessions.nonce(token)
        assert nonce is not None
        response = JSONResponse({"code": 200, "msg": "signed in", "csrf": sessions.csrf(nonce)})
        response.set_cookie(
            COOKIE,
            token,
            max_age=settings.webui_session_ttl_s,
            httponly=True,
            samesite="strict",
            secure=settings.webui_cookie_secure,
            path="/",
        )
        return response

    @app.get("/session")
    async def session(request: Request) -> dict:
        return {"code": 200, "msg": "signed in", "csrf": sessions.csrf(request.state.nonce)}

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        sessions.revoke(request.state.nonce)
        response = JSONResponse({"code": 200, "msg": "signed out"})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.api_route("/api/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def proxy(path: str, request: Request) -> Response:
        http: httpx.AsyncClient = app.state.http
        upstream = http.build_request(
            request.method,
            f"/{path}",
            params=request.query_params,
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() not in PRIVATE
            },
            content=request.stream(),
        )
        try:
            response = await http.send(upstream, stream=True)
        except httpx.TransportError as exc:
            log.warning("api unreachable", extra={"error": str(exc)})
            return refuse(502, f"API at {settings.api_base_url} is unreachable: {exc}")
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(response.aclose),
        )

    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging()
    app = create_webui(settings)
    uvicorn.run(app, host=settings.webui_host, port=settings.webui_port, log_config=None)


if __name__ == "__main__":
    main()
