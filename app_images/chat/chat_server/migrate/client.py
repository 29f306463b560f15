"""The chat service's 0.2 HTTP API as the migrator uses it: httpx, retried by tenacity.

Connection errors and 5xx answers are retried with exponential backoff; a 4xx never is (the
service has decided), and 401/403 stop the run (a wrong key fails every later call too).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = logging.getLogger("chat_server.migrate")


class ApiRefused(Exception):
    """A 4xx answer: the service refused this request, with its reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class ApiUnavailable(Exception):
    """No usable answer after every retry, or a credential the service refuses."""


class _Transient(Exception):
    """A 5xx answer, retried like a connection error."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {reason_of(response)}")


def reason_of(response: httpx.Response) -> str:
    """The service's own words: `msg` of the 0.2 envelope, else `detail`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("msg", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return response.text[:300]


@dataclass(frozen=True)
class Upload:
    kb: str
    files: Sequence[tuple[str, Path]]  # (name in the service, path on the volume)
    split: dict[str, str]  # chunk_size, chunk_overlap, zh_title_enhance when given


class ChatApi:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, attempts: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = attempts
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()

    def _retrying(self, what: str) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome.exception() if state.outcome else None
            log.warning("retrying %s after attempt %d: %s", what, state.attempt_number, outcome)

        return Retrying(
            retry=retry_if_exception_type((httpx.TransportError, _Transient)),
            wait=wait_exponential_jitter(initial=0.5, max=30),
            stop=stop_after_attempt(self.attempts),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(self, what: str, send: Callable[[], httpx.Response]) -> Any:
        try:
            for attempt in self._retrying(what):
                with attempt:
                    response = send()
                    if response.status_code >= 500:
                        raise _Transient(response)
        except (httpx.TransportError, _Transient) as exc:
            raise ApiUnavailable(
                f"{what}: no answer from {self.base_url} after {self.attempts} attempts: "
                f"{exc or type(exc).__name__}"
            ) from exc
        if response.status_code in (401, 403):
            raise ApiUnavailable(
                f"{what}: {response.status_code} {reason_of(response)} (check --api-key)"
            )
        if response.status_code >= 400:
            raise ApiRefused(response.status_code, reason_of(response))
        body = response.json()
        if isinstance(body, dict) and body.get("code", 200) != 200:
            raise ApiRefused(int(body["code"]), reason_of(response))
        return body

    def list_kbs(self) -> list[str]:
        body = self._call(
            "list_knowledge_bases", lambda: self.http.get("/knowledge_base/list_knowledge_bases")
        )
        return list(body["data"])

    def create_kb(self, name: str, vs_type: str | None) -> None:
        payload: dict[str, Any] = {"knowledge_base_name": name}
        if vs_type:
            payload["vector_store_type"] = vs_type
        self._call(
            f"create_knowledge_base {name!r}",
            lambda: self.http.post("/knowledge_base/create_knowledge_base", json=payload),
        )

    def update_info(self, name: str, kb_info: str) -> None:
        payload = {"knowledge_base_name": name, "kb_info": kb_info}
        self._call(
            f"update_info {name!r}",
            lambda: self.http.post("/knowledge_base/update_info", json=payload),
        )

    def list_files(self, name: str) -> list[str]:
        body = self._call(
            f"list_files {name!r}",
            lambda: self.http.get(
                "/knowledge_base/list_files", params={"knowledge_base_name": name}
            ),
        )
        return list(body["data"])

    def upload(self, upload: Upload) -> dict[str, Any]:
        """upload_docs with override: the service embeds what is new or changed and answers
        `unchanged_files` for what it holds already (same bytes, same split)."""

        def send() -> httpx.Response:
            with ExitStack() as files:  # opened again for every attempt: a retry reads afresh
                parts = [
                    (
                        "files",
                        (
                            name,
                            files.enter_context(path.open("rb")),
                            mimetypes.guess_type(name)[0] or "application/octet-stream",
                        ),
                    )
                    for name, path in upload.files
                ]
                return self.http.post(
                    "/knowledge_base/upload_docs",
                    data={"knowledge_base_name": upload.kb, "override": "true", **upload.split},
                    files=parts,
                )

        body = self._call(f"upload_docs {upload.kb!r} ({len(upload.files)} files)", send)
        return dict(body["data"])
