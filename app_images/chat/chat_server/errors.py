"""The service's one typed error: an HTTP status and a message for the client.

Routers, the knowledge-base service and the clients raise it (or a subclass); one exception
handler in `chat_server.api.errors` renders it, so no router builds an error body.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure the client can act on: `status` is the HTTP status, `message` says what."""

    status: int = 500

    def __init__(
        self,
        status: int | None,
        message: str,
        retry_after_s: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        self.headers = dict(headers or {})


class StoreUnavailable(ServiceError):
    """The database behind a store cannot be reached right now: 503 with `Retry-After`."""

    status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(None, message, retry_after_s)


class UpstreamError(ServiceError):
    """The llm failed: unreachable or overloaded (503), or answered something unusable (502)."""
