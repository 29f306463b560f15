"""Open-source models on a GPU through vLLM's AsyncLLMEngine (continuous batching).

Written against vLLM's async engine API (``vllm.AsyncEngineArgs``,
``vllm.AsyncLLMEngine.from_engine_args``, ``engine.generate(prompt, SamplingParams, request_id)``
yielding ``RequestOutput`` with cumulative ``outputs[0].text``/``token_ids``, and
``engine.abort(request_id)``), the version pinned in the CUDA Dockerfile. vLLM is imported only
here and only when this engine is chosen; CPU tests use a fake module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from .base import Chunk, Engine, EngineUnavailableError, SamplingOptions


class VllmEngine(Engine):
    kind = "vllm"

    def _vllm(self) -> Any:
        try:
            import vllm
        except ImportError as exc:
            raise EngineUnavailableError(
                f"the vllm package is not installed; {self.model_name} needs the CUDA image "
                "(app_images/llm/Dockerfile) or LLM_ENGINE=transformers"
            ) from exc
        return vllm

    def load(self) -> None:
        vllm = self._vllm()
        self._load_tokenizer(self.model_dir)
        args = vllm.AsyncEngineArgs(
            model=str(self.model_dir),
            dtype="float16",
            trust_remote_code=True,
            max_model_len=self.context_length,
        )
        self.engine = vllm.AsyncLLMEngine.from_engine_args(args)
        self._sampling_params = vllm.SamplingParams

    async def generate(self, prompt: str, options: SamplingOptions) -> AsyncIterator[Chunk]:
        request_id = uuid.uuid4().hex
        params = self._sampling_params(
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            ignore_eos=options.ignore_eos,
        )
        text_seen = 0
        tokens_seen = 0
        finished = False
        try:
            async for output in self.engine.generate(prompt, params, request_id):
                completion = output.outputs[0]
                delta = completion.text[text_seen:]
                new_tokens = len(completion.token_ids) - tokens_seen
                text_seen, tokens_seen = len(completion.text), len(completion.token_ids)
                finished = bool(output.finished)
                reason = completion.finish_reason if finished else None
                if delta or new_tokens or reason:
                    yield Chunk(text=delta, tokens=new_tokens, finish_reason=reason)
        finally:
            if not finished:  # client went away: free the sequence's KV cache at once
                await self.engine.abort(request_id)
