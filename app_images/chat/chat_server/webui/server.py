"""Web UI on 8501: one static page, a sign-in, and a streaming proxy to the API on 7861.

People sign in with the OpenID provider (authorization code flow with PKCE, through authlib's
Starlette client, which checks the state and the ID token's nonce) when OIDC_ISSUER is set; the
API key stays the admin's sign-in. A signed session lives in an HttpOnly, SameSite=Strict
cookie; every state-changing call must also come from this origin (`Origin`/`Sec-Fetch-Site`)
and carry the session's CSRF token in `X-CSRF-Token`. The proxy adds the credential itself: the
signed-in user's access token (kept in this process, never sent to the browser), or the API
key for the admin, so neither reaches the browser after sign-in.

Beside the proxy: `POST /ui/render` turns an answer's Markdown into sanitised HTML (`render.py`),
and `GET /ui/download` serves a knowledge-base file through this port, where the sources of an
answer link to. The page runs under a CSP that allows only its own files (`static/`).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
    OAuth,
    OAuthError,
)
from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from chat_server.api.deps import key_matches
from chat_server.api.errors import envelope
from chat_server.api.limits import BodyLimit
from chat_server.logs import configure_logging
from chat_server.settings import Settings, get_settings
from chat_server.webui.render import render_markdown


def transport_errors() -> tuple[type[Exception], ...]:
    """The provider being unreachable: authlib talks through `httpx2` when it is installed,
    else through `httpx`."""
    try:
        second: type[Exception] = importlib.import_module("httpx2").HTTPError
    except ImportError:
        return (httpx.HTTPError,)
    return (httpx.HTTPError, second)


PROVIDER_ERRORS = transport_errors()
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
# The page's own files, served before sign-in (the sign-in form needs them), nothing else.
ASSETS = {
    "app.js": "text/javascript",
    "i18n.js": "text/javascript",
    "app.css": "text/css",
}
PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/login", "/auth/methods", "/auth/login", "/auth/callback"}
    | {f"/static/{name}" for name in ASSETS}
)
# The page runs only its own files: no inline script or style, no other origin, no framing,
# so even markup that slipped past the sanitiser could not run.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# What the API sends through the proxy (JSON, streams, users' files) is never run as a page of
# this origin: an uploaded HTML file opened here would otherwise act as the signed-in user.
PROXIED_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}
MAX_RENDER_CHARS = 200_000  # one answer; the JSON body cap (MAX_JSON_BODY_BYTES) applies too
MAX_SOURCES = 100
# Holds only authlib's state, nonce and PKCE verifier between /auth/login and /auth/callback;
# SameSite=Lax, as the provider's redirect back is a cross-site navigation.
FLOW_COOKIE = "chat_signin_flow"


@dataclass(frozen=True)
class UserSession:
    """What a provider sign-in left: the access token the proxy forwards, and who it is."""

    access_token: str
    name: str
    expires_at: float


class Login(BaseModel):
    api_key: str


class RenderRequest(BaseModel):
    """An answer (Markdown) and its sources (0.2's Markdown source references)."""

    text: str = Field(default="", max_length=MAX_RENDER_CHARS)
    sources: list[Annotated[str, Field(max_length=MAX_RENDER_CHARS)]] = Field(
        default_factory=list, max_length=MAX_SOURCES
    )


class Sessions:
    """Stateless signed tokens `<expiry>.<nonce>.<mac>`, plus the nonces signed out here."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self.secret = secret
        self.ttl_s = ttl_s
        self.revoked: dict[str, float] = {}

    def _mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, ttl_s: int | None = None, *, user: bool = False) -> str:
        """A session token; a user's (provider sign-in) nonce starts with `u-`, so it can never
        pass for an admin session once this process no longer holds the user's access token."""
        ttl = self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s)
        nonce = ("u-" if user else "a-") + secrets.token_urlsafe(18)
        payload = f"{int(time.time()) + ttl}.{nonce}"
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
    secret = session_secret(settings, api_key)
    sessions = Sessions(secret, settings.webui_session_ttl_s)
    users: dict[str, UserSession] = {}  # session nonce -> the provider sign-in behind it
    oauth = OAuth()
    if settings.oidc_issuer:
        oauth.register(
            "oidc",
            client_id=settings.oidc_client_id,
            client_secret=(
                settings.oidc_client_secret.get_secret_value()
                if settings.oidc_client_secret is not None
                else None
            ),
            server_metadata_url=settings.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
        )

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
    app.add_middleware(
        SessionMiddleware,
        secret_key=hmac.new(secret, b"signin-flow", hashlib.sha256).hexdigest(),
        session_cookie=FLOW_COOKIE,
        max_age=600,
        same_site="lax",
        https_only=settings.webui_cookie_secure,
    )

    def new_session(ttl_s: int | None = None, *, user: bool = False) -> tuple[str, str]:
        token = sessions.issue(ttl_s, user=user)
        nonce = sessions.nonce(token)
        assert nonce is not None
        return token, nonce

    def set_session_cookie(response: Response, token: str, ttl_s: int | None = None) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=ttl_s or settings.webui_session_ttl_s,
            httponly=True,
            samesite="strict",
            secure=settings.webui_cookie_secure,
            path="/",
        )

    @app.middleware("http")
    async def require_session(request: Request, call_next: Any) -> Response:
        if request.url.path in PUBLIC_PATHS:
            if request.method == "POST" and not same_origin(request):
                return refuse(403, "cross-origin request refused")
            response: Response = await call_next(request)
            return response
        nonce = sessions.nonce(request.cookies.get(COOKIE))
        user = users.get(nonce or "")
        if user is not None and user.expires_at < time.time():
            users.pop(nonce or "", None)
            user = None
        if user is None and nonce is not None and nonce.startswith("u-"):
            nonce = None  # a user's session whose token this process does not hold (restart)
        if nonce is None:
            return refuse(401, "not signed in: sign in with the API key")
        if request.method not in ("GET", "HEAD"):
            token = request.headers.get(CSRF_HEADER, "")
            if not same_origin(request) or not hmac.compare_digest(token, sessions.csrf(nonce)):
                return refuse(403, "cross-origin request or missing CSRF token refused")
        request.state.nonce = nonce
        request.state.user = user
        response = await call_next(request)
        return response

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:  # never reached: the session check refuses other paths first
            return refuse(404, f"no such file: {name}")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/login")
    async def login(body: Login) -> Response:
        if not key_matches(body.api_key, api_key):
            log.warning("sign-in refused")
            return refuse(401, "wrong API key")
        token, nonce = new_session()
        response = JSONResponse({"code": 200, "msg": "signed in", "csrf": sessions.csrf(nonce)})
        set_session_cookie(response, token)
        return response

    @app.get("/auth/methods")
    async def methods() -> dict:
        """How one can sign in here: the page shows the provider's button when it is set."""
        return {"code": 200, "msg": "ok", "oidc": bool(settings.oidc_issuer)}

    @app.get("/auth/login")
    async def oidc_login(request: Request) -> Response:
        if not settings.oidc_issuer:
            return refuse(404, "sign-in with a provider is off: OIDC_ISSUER is not set")
        base = settings.webui_public_url.rstrip("/") or str(request.base_url).rstrip("/")
        try:
            response: Response = await oauth.oidc.authorize_redirect(
                request, f"{base}/auth/callback"
            )
        except PROVIDER_ERRORS as exc:
            log.warning("provider unreachable", extra={"error": str(exc)})
            return refuse(502, f"the OpenID provider at {settings.oidc_issuer} is unreachable")
        return response

    @app.get("/auth/callback")
    async def oidc_callback(request: Request) -> Response:
        if not settings.oidc_issuer:
            return refuse(404, "sign-in with a provider is off: OIDC_ISSUER is not set")
        try:
            # Checks the state against this browser's flow cookie, sends the PKCE verifier,
            # and checks the ID token (signature, issuer, audience, nonce).
            token = await oauth.oidc.authorize_access_token(request)
        except OAuthError as exc:
            log.warning("provider sign-in refused", extra={"error": exc.error})
            return refuse(401, f"sign-in refused: {exc.error}: {exc.description or ''}".strip())
        except PROVIDER_ERRORS as exc:
            return refuse(502, f"the OpenID provider at {settings.oidc_issuer} failed: {exc}")
        request.session.clear()
        claims = token.get("userinfo") or {}
        access = token.get("access_token")
        if not access:
            return refuse(401, "sign-in refused: the provider sent no access token")
        lifetime = int(token.get("expires_in") or settings.webui_session_ttl_s)
        session_token, nonce = new_session(max(lifetime, 1), user=True)
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(response, session_token, max(lifetime, 1))
        name = str(claims.get(settings.oidc_name_claim) or claims.get("sub") or "")
        users[nonce] = UserSession(access, name, time.time() + lifetime)
        now = time.time()
        for old in [n for n, u in users.items() if u.expires_at < now]:
            users.pop(old, None)
        log.info("signed in through the provider", extra={"subject": claims.get("sub")})
        return response

    @app.get("/session")
    async def session(request: Request) -> dict:
        user: UserSession | None = request.state.user
        return {
            "code": 200,
            "msg": "signed in",
            "csrf": sessions.csrf(request.state.nonce),
            "user": user.name if user is not None else "admin",
        }

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        users.pop(request.state.nonce, None)
        sessions.revoke(request.state.nonce)
        response = JSONResponse({"code": 200, "msg": "signed out"})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def forward(request: Request, path: str, params: Any, content: Any) -> Response:
        """The request to the API with the signed-in user's credential, streamed back."""
        http: httpx.AsyncClient = app.state.http
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() not in PRIVATE
        }
        user: UserSession | None = request.state.user
        if user is not None:  # the API sees the user, not the admin key
            headers["authorization"] = f"Bearer {user.access_token}"
        upstream = http.build_request(
            request.method, path, params=params, headers=headers, content=content
        )
        try:
            response = await http.send(upstream, stream=True)
        except httpx.TransportError as exc:
            log.warning("api unreachable", extra={"error": str(exc)})
            return refuse(502, f"API at {settings.api_base_url} is unreachable: {exc}")
        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers={**kept, **PROXIED_HEADERS},
            background=BackgroundTask(response.aclose),
        )

    @app.api_route("/api/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def proxy(path: str, request: Request) -> Response:
        return await forward(request, f"/{path}", request.query_params, request.stream())

    @app.get("/ui/download")
    async def download(request: Request, knowledge_base_name: str, file_name: str) -> Response:
        """A knowledge-base file, through this port: where the sources of an answer link to."""
        params = {"knowledge_base_name": knowledge_base_name, "file_name": file_name}
        return await forward(request, "/knowledge_base/download_doc", params, None)

    @app.post("/ui/render")
    async def render(body: RenderRequest) -> dict:
        """An answer and its sources as sanitised HTML (see `chat_server.webui.render`)."""

        def both() -> tuple[str, list[str]]:
            return render_markdown(body.text), [render_markdown(s) for s in body.sources]

        html, sources = await run_in_threadpool(both)
        return {"code": 200, "msg": "ok", "html": html, "sources": sources}

    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging()
    app = create_webui(settings)
    uvicorn.run(app, host=settings.webui_host, port=settings.webui_port, log_config=None)


if __name__ == "__main__":
    main()
