"""The llm service's OpenAI-compatible endpoint, with timeouts and retries on connect errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI


class LLMUnavailable(Exception):
    """The llm service cannot be reached or failed; the API answers 503."""


class LLMClient:
    def __init__(
        self, base_url: str, api_key: str, model: str, timeout_s: float, connect_timeout_s: float
    ) -> None:
        self.base_url = base_url
        self.model = model
        # The openai client retries connection errors, 408/429 and 5xx with backoff.
        self.client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "EMPTY",
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=2,
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
            response = await self.client.chat.completions.create(
                **self._params(messages, model, temperature, max_tokens)
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc
        return response.choices[0].message.content or ""

    async def stream(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]:
        """Open the stream now (so connection errors surface before any response is sent)."""
        try:
            stream = await self.client.chat.completions.create(
                stream=True, **self._params(messages, model, temperature, max_tokens)
            )
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            raise LLMUnavailable(self._describe(exc)) from exc

        async def tokens() -> AsyncIterator[str]:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return tokens()

    async def reachable(self) -> bool:
        try:
            await self.client.with_options(timeout=2.0, max_retries=0).models.list()
        except (openai.APIConnectionError, openai.APIStatusError):
            return False
        return True

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, openai.APIStatusError):
            return f"llm service at {self.base_url} answered HTTP {exc.status_code}: {exc.message}"
        return f"llm service at {self.base_url} is unreachable: {exc}"
