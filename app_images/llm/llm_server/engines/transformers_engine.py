"""CPU (or plain GPU) engine on Hugging Face transformers, so the stack runs without a GPU."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator
from typing import Any

from ..logs import log_event
from .base import Chunk, Engine, IncrementalDecoder, SamplingOptions

logger = logging.getLogger(__name__)
_END = object()


class _QueueStreamer:
    """transformers streamer that hands each new token id to an asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self._loop = loop
        self._queue = queue
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids
            self._prompt_seen = True
            return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class TransformersEngine(Engine):
    kind = "transformers"

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self._load_tokenizer(self.model_dir)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        if self.load_8bit:
            log_event(logger, "load_8bit_ignored", engine=self.kind, reason="not supported here")
        # Any: transformers types `.to` through a decorator mypy cannot see through.
        model: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        self.model = model.to(self.device).eval()
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit:
            self.context_length = min(self.context_length, int(limit))

    async def generate(self, prompt: str, options: SamplingOptions) -> AsyncGenerator[Chunk, None]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        class _StopWhenCancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        sampling = options.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_tokens,
            "do_sample": sampling,
            "streamer": _QueueStreamer(loop, queue),
            "stopping_criteria": StoppingCriteriaList([_StopWhenCancelled()]),
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=options.temperature, top_p=options.top_p, top_k=0)
        if options.ignore_eos:
            kwargs["min_new_tokens"] = options.max_tokens

        def run() -> None:
            try:
                # Tokenised here, in the generation thread, not on the event loop.
                inputs = self.encode(prompt, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                with torch.inference_mode():
                    self.model.generate(**inputs, **kwargs)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which re-raises
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        threading.Thread(target=run, name="generate", daemon=True).start()
        decoder = IncrementalDecoder(self.tokenizer)
        produced = 0
        pending_tokens = 0
        try:
            ended = False
            while not ended:
                items = [await queue.get()]
                while not queue.empty():  # a slow reader gets the backlog in one chunk
                    items.append(queue.get_nowait())
                ids: list[int] = []
                for item in items:
                    if isinstance(item, Exception):
                        raise item
                    if item is _END:
                        ended = True
                    else:
                        ids.extend(item)
                produced += len(ids)
                pending_tokens += len(ids)
                text = decoder.push(ids, final=ended)
                if text and not ended:
                    yield Chunk(text=text, tokens=pending_tokens)
                    pending_tokens = 0
            reason = "length" if produced >= options.max_tokens else "stop"
            yield Chunk(text=text, tokens=pending_tokens, finish_reason=reason)
        finally:
            cancelled.set()  # client gone or stop string hit: the thread ends at the next token
