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

from chat_server.errors import ServiceError, StoreUnavailable

log = logging.getLogger("chat_server.api")
OPENAI_PREFIX = "/v1/"


def envelope(status: int, msg: str, detail: Any = None) -> dict[str, Any]:
    """Chatchat 0.2's error body; `detail` repeats `msg` unless there is more to say."""
    return {"code": status, "msg": msg, "data": None, "detail": msg if detail is None else detail}


def openai_error(status: int, msg: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    return {"error": {"message": msg, "type": kind, "param": None, "code": status}}


def error_response(path: str, err: ServiceError, detail: Any = None) -> JSONResponse:
    body = (
        openai_error(err.status, err.message)
        if path.startswith(OPENAI_PREFIX)
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
    return error_response(request.url.path, err, detail)


def install_error_handlers(app: FastAPI) -> None:
    for kind in (
        ServiceError,
        RequestValidationError,
        HTTPException,
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
    ):
        app.add_exception_handler(kind, _handle)
