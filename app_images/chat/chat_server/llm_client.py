"""The llm service's OpenAI-compatible endpoint, with timeouts, retries and checked replies.

Every fault becomes an `UpstreamError` the API can show as an error, never as an answer:
unreachable or 5xx (503), a reply that is not OpenAI JSON or has no choices (502), and a stream
that breaks or ends without a `finish_reason` (502, raised while the stream is being read).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pydantic
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from chat_server.errors import UpstreamError


class LLMUnavailable(UpstreamError):
    """The llm service cannot be reached or answered an HTTP error: 503."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(None, message, retry_after_s=5)


class LLMBadReply(UpstreamError):
    """The llm answered, but not with a usable OpenAI reply, or its stream broke: 502."""

    status = 502

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


# What the openai client raises for a reply it cannot read (a broken connection mid-body comes
# as APIConnectionError).
_BROKEN_REPLY = (
    openai.APIResponseValidationError,
    json.JSONDecodeError,
    pydantic.ValidationError,
)


class LLMClient:
    def __init__(
        self, base_url: str, api_key: str, model: str, timeout_s: float, connect_timeout_s: float
    ) -> None:
        self.base_url = base_url
        self.model = model
        # The openai client retries connection errors, 408/429 and 5xx with backoff; strict
        # validation turns a chunk that is not a ChatCompletionChunk into an error, not a blank.
        self.client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "EMPTY",
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=2,
            _strict_response_validation=True,
        )

    def _params(
        self,
        messages: list[dict[str, str]],
        model: str | None,
        temperature: float,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model or self.model,
            "messages": messages,
            "temperature": temperature,
        }
        if max_tokens:
            params["max_tokens"] = max_tokens
        return params

    async def complete(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> str:
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                **self._params(messages, model, temperature, max_tokens)
            )
            reply = ChatCompletion.model_validate_json(raw.http_response.content)
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc
        except _BROKEN_REPLY as exc:
            raise LLMBadReply(self._bad(f"a reply that is not OpenAI chat JSON ({exc})")) from exc
        if not reply.choices:
            raise LLMBadReply(self._bad("a reply with no choices"))
        return reply.choices[0].message.content or ""

    async def stream(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]:
        """Open the stream now (so connection errors surface before any response is sent).

        The returned tokens raise `LLMBadReply` if the stream breaks, carries an error, or ends
        before a choice reports a `finish_reason` (a cut-off answer must not look complete).
        """
        try:
            stream = await self.client.chat.completions.create(
                stream=True, **self._params(messages, model, temperature, max_tokens)
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc
        except _BROKEN_REPLY as exc:
            raise LLMBadReply(self._bad(f"a stream that could not be read ({exc})")) from exc

        async def tokens() -> AsyncIterator[str]:
            finished = False
            try:
                async for chunk in stream:
                    for choice in chunk.choices:
                        finished = finished or choice.finish_reason is not None
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            except openai.APIConnectionError as exc:
                broke = self._bad(f"a stream that broke off ({exc.__cause__!r})")
                raise LLMBadReply(broke) from exc
            except openai.APIError as exc:
                raise LLMBadReply(self._bad(f"an error in its stream: {exc.message}")) from exc
            except _BROKEN_REPLY as exc:
                raise LLMBadReply(self._bad(f"a stream that broke off ({exc!r})")) from exc
            finally:
                await stream.close()
            if not finished:
                raise LLMBadReply(self._bad("a stream that ended before the answer was finished"))

        return tokens()

    async def reachable(self) -> bool:
        try:
            await self.client.with_options(timeout=2.0, max_retries=0).models.list()
        except (openai.APIConnectionError, openai.APIStatusError, *_BROKEN_REPLY):
            return False
        return True

    def _bad(self, what: str) -> str:
        return f"llm service at {self.base_url} sent {what}"

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, openai.APIStatusError):
            return f"llm service at {self.base_url} answered HTTP {exc.status_code}: {exc.message}"
        return f"llm service at {self.base_url} is unreachable: {exc}"
