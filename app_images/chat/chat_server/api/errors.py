"""The one place errors become HTTP responses: the 0.2 envelope, or OpenAI's shape on /v1."""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from chat_server import metrics
from chat_server.errors import ServiceError, StoreUnavailable
from chat_server.llm_client import LLMUnavailable

log = logging.getLogger("chat_server.api")
OPENAI_PREFIX = "/v1/"


def envelope(status: int, msg: str, detail: Any = None) -> dict[str, Any]:
    """Chatchat 0.2's error body; `detail` repeats `msg` unless there is more to say."""
    return {"code": status, "msg": msg, "data": None, "detail": msg if detail is None else detail}


# OpenAI's error `type` by status, named as its client names the exception it raises.
_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "upstream_error",
}


def is_openai_path(path: str) -> bool:
    return path == OPENAI_PREFIX.rstrip("/") or path.startswith(OPENAI_PREFIX)


def openai_error(status: int, msg: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body; `code` is the HTTP status (OpenAI's own codes are per-error names)."""
    kind = _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": msg, "type": kind, "param": param, "code": status}}


def _openai_param(detail: Any) -> str | None:
    """The field a validation error is about (`messages.0.content`), for OpenAI's `param`."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = [str(p) for p in detail[0].get("loc", []) if p != "body"]
        return ".".join(loc) or None
    return None


def error_response(path: str, err: ServiceError, detail: Any = None) -> JSONResponse:
    body = (
        openai_error(err.status, err.message, _openai_param(detail))
        if is_openai_path(path)
        else envelope(err.status, err.message, detail)
    )
    headers = dict(err.headers)
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(err.retry_after_s)
    if err.status >= 500:
        log.warning("request failed", extra={"path": path, "status": err.status, "error": str(err)})
    return JSONResponse(body, status_code=err.status, headers=headers or None)


def as_service_error(exc: Exception) -> tuple[ServiceError, Any]:
    """Map what the framework and the database driver raise onto the one typed error."""
    if isinstance(exc, ServiceError):
        return exc, None
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        detail = json.loads(json.dumps(exc.errors(), default=str))
        return ServiceError(422, f"invalid request: {problems}"), detail
    if isinstance(exc, HTTPException):
        return ServiceError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {})), None
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return StoreUnavailable(f"the knowledge-base database is unavailable: {exc}"), None
    raise TypeError(f"no error mapping for {type(exc).__name__}") from exc


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    err, detail = as_service_error(exc)
    if isinstance(err, LLMUnavailable):
        metrics.llm_unavailable(request.scope)  # what wakes a scaled-to-zero llm
    return error_response(request.url.path, err, detail)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a client error: logged with its traceback, answered 500 in the route's shape."""
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    err = ServiceError(500, f"internal error ({type(exc).__name__}); see the API's log")
    return error_response(request.url.path, err)


def install_error_handlers(app: FastAPI) -> None:
    for kind in (
        ServiceError,
        RequestValidationError,
        HTTPException,
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
    ):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(Exception, _unexpected)
