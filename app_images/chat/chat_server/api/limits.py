"""A pure ASGI middleware that caps the request body before anything buffers it.

A declared `Content-Length` over the cap is refused at once, unread; a body without one
(chunked) is counted as it arrives and refused at the first byte over the cap.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_server.errors import ServiceError


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so FastAPI's body parser lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        multipart_limit: int,
        other_limit: int,
        path_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.multipart_limit = multipart_limit
        self.other_limit = other_limit
        # Routes whose JSON bodies have a cap of their own (a bulk import's hand-over).
        self.path_limits = path_limits or {}

    def limit_for(self, headers: Headers, path: str = "") -> int:
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        if multipart:
            return self.multipart_limit
        return self.path_limits.get(path, self.other_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_for(headers, scope["path"])
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status = 413 if declared.isdigit() else 400
            message = (
                BodyTooLarge(limit).detail
                if status == 413
                else f"Content-Length {declared!r} is not a byte count"
            )
            await self._refuse(scope, receive, send, ServiceError(status, message))
            return

        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:
            if started:
                raise
            await self._refuse(scope, receive, send, ServiceError(413, str(exc.detail)))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, err: ServiceError) -> None:
        from chat_server.api.errors import error_response

        err.headers["Connection"] = "close"  # the rest of the body is never read
        await error_response(scope["path"], err)(scope, receive, send)
