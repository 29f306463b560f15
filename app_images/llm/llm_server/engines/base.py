"""What every engine offers the API: a tokenizer view and a cancellable token stream."""

from __future__ import annotations

import abc
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


class EngineUnavailableError(RuntimeError):
    """The engine cannot run here (vendor package missing, wrong model kind)."""


@dataclass(frozen=True)
class SamplingOptions:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    ignore_eos: bool = False


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text and how many tokens produced it."""

    text: str
    tokens: int
    finish_reason: str | None = None


class IncrementalDecoder:
    """Turns a growing list of token ids into text deltas without splitting UTF-8 characters."""

    MAX_CHAR_TOKENS = 4  # a UTF-8 character is at most 4 bytes, so 4 byte-level tokens

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = ""
        self._held = 0

    def push(self, token_ids: list[int], final: bool = False) -> str:
        self._ids.extend(token_ids)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        self._held += len(token_ids)
        # Hold back a possibly incomplete character, but no longer than one can be: past that
        # the replacement character is an invalid byte the model produced, not a split one.
        if text.endswith("\ufffd") and not final and self._held < self.MAX_CHAR_TOKENS:
            return ""
        self._held = 0
        delta = text[len(self._emitted) :]
        self._emitted = text
        return delta


class Engine(abc.ABC):
    """One loaded model. ``load`` blocks (it runs in a thread); ``generate`` is async."""

    kind: ClassVar[str]

    def __init__(self, model_dir: Path, model_name: str, context_length: int, load_8bit: bool):
        self.model_dir = model_dir
        self.model_name = model_name
        self.context_length = context_length
        self.load_8bit = load_8bit
        self.tokenizer: Any = None
        # Fast tokenizers are not safe to encode from several threads at once ("Already
        # borrowed"); encodes run in worker threads, so they take turns.
        self._encode_lock = threading.Lock()

    def _load_tokenizer(self, tokenizer_dir: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=True)

    @abc.abstractmethod
    def load(self) -> None: ...

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        # Models without a template (base models) get a plain transcript.
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def encode(self, text: str, **kwargs: Any) -> Any:
        """Tokenise (blocking: call it from a worker thread, never on the event loop)."""
        with self._encode_lock:
            return self.tokenizer(text, add_special_tokens=False, **kwargs)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text)["input_ids"])

    @abc.abstractmethod
    def generate(self, prompt: str, options: SamplingOptions) -> AsyncGenerator[Chunk, None]:
        """Yield chunks; closing the iterator early must stop the generation."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""
