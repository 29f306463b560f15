"""The llm service's OpenAI-compatible endpoint, with timeouts, retries and checked replies.

Every fault becomes an `UpstreamError` the API can show as an error, never as an answer:
unreachable or 5xx (503), a reply that is not OpenAI JSON or has no choices (502), and a stream
that breaks or ends without a `finish_reason` (502, raised while the stream is being read).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens"}


@dataclass(frozen=True)
class Reply:
    text: str
    usage: dict[str, int] | None  # the llm's token counts; None when it reported none


class TokenStream:
    """An opened answer stream: iterate it for the tokens; `usage` is set once it has ended."""

    def __init__(self) -> None:
        self.tokens: AsyncIterator[str] | None = None
        self.usage: dict[str, int] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        assert self.tokens is not None
        return self.tokens


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
        return (await self.reply(messages, model, temperature, max_tokens)).text

    async def reply(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> Reply:
        """The whole answer with the token counts the llm reported (None if it reported none)."""
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
        usage = reply.usage.model_dump(include=USAGE_KEYS) if reply.usage else None
        return Reply(reply.choices[0].message.content or "", usage)

    async def stream(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        include_usage: bool = False,
    ) -> TokenStream:
        """Open the stream now (so connection errors surface before any response is sent).

        The returned tokens raise `LLMBadReply` if the stream breaks, carries an error, or ends
        before a choice reports a `finish_reason` (a cut-off answer must not look complete).
        With `include_usage` the llm is asked for its token counts (`stream_options`); they are
        in the stream's `usage` once it has been read to the end.
        """
        extra: dict[str, Any] = {}
        if include_usage:
            extra["stream_options"] = {"include_usage": True}
        try:
            stream = await self.client.chat.completions.create(
                stream=True, **self._params(messages, model, temperature, max_tokens), **extra
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc
        except _BROKEN_REPLY as exc:
            raise LLMBadReply(self._bad(f"a stream that could not be read ({exc})")) from exc

        result = TokenStream()

        async def tokens() -> AsyncIterator[str]:
            finished = False
            try:
                async for chunk in stream:
                    if chunk.usage is not None:
                        result.usage = chunk.usage.model_dump(include=USAGE_KEYS)
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

        result.tokens = tokens()
        return result

    async def served_models(self) -> list[dict[str, Any]]:
        """The llm service's `/v1/models` entries as it sent them (id, max_model_len, ...)."""
        try:
            raw = await self.client.with_options(max_retries=0).models.with_raw_response.list()
            body = json.loads(raw.http_response.content)
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc
        except _BROKEN_REPLY as exc:
            raise LLMBadReply(self._bad(f"a model list that is not JSON ({exc})")) from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
        ):
            raise LLMBadReply(self._bad("a model list without `data: [{id}]`"))
        return data

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
