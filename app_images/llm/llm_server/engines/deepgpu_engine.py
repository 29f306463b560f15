"""DeepGPU-LLM adapter for ``*-aiacc`` (converted) models.

Written from Alibaba Cloud's published page "Advanced DeepGPU-LLM API and examples"
(https://help.aliyun.com/en/egs/developer-reference/deepgpu-llm-api-interface-description-and-sample,
consulted 2026-11-25), for the DeepGPU-LLM release in the vendor image named by
``DEEPGPU_IMAGE`` in Dockerfile.aiacc (the 24.x Python 3.10 wheels that ship the
``deepgpu_llm`` package and the ``huggingface_model_convert`` command).

The vendor calls are confined to ``_vendor_model`` and ``_vendor_generate``:

- model loading: one module per family, ``from deepgpu_llm.<family>_model import <family>_model``
  (qwen_model, llama_model, baichuan_model, chatglm_model), called with the converted model
  directory, ``gpu_id``, ``gpu_num`` and ``precision`` ("fp16", or "int8" for LOAD_8BIT);
- inference: ``model.generate(prompts, max_generated_length=..., top_k=..., top_p=...,
  temperature=..., streaming=True)``; in streaming mode it yields the text generated so far.

The copy of that page available while writing this showed the conversion section in full but
not every generate() keyword, so these signatures are the adapter's best reading of the page
and must be checked against the installed vendor version before production use. Tests run it
against a fake ``deepgpu_llm`` module built in the test; no real DeepGPU-LLM ran here.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any

from .base import Chunk, Engine, EngineUnavailableError, SamplingOptions

VENDOR_PACKAGE = "deepgpu_llm"
# catalog family -> vendor module/class name
FAMILY_CLASSES = {
    "qwen": "qwen_model",
    "llama2": "llama_model",
    "baichuan2": "baichuan_model",
    "chatglm2": "chatglm_model",
}
_END = object()


class DeepGpuEngine(Engine):
    kind = "deepgpu"

    def __init__(
        self,
        model_dir: Path,
        model_name: str,
        context_length: int,
        load_8bit: bool,
        *,
        family: str,
        tokenizer_dir: Path | None = None,
    ) -> None:
        super().__init__(model_dir, model_name, context_length, load_8bit)
        if family not in FAMILY_CLASSES:
            raise EngineUnavailableError(
                f"DeepGPU-LLM adapter has no model class for family {family!r} "
                f"({model_name}); known: {', '.join(sorted(FAMILY_CLASSES))}"
            )
        self.family = family
        self.tokenizer_dir = tokenizer_dir
        class_name = FAMILY_CLASSES[family]
        try:
            module = importlib.import_module(f"{VENDOR_PACKAGE}.{class_name}")
        except ImportError as exc:
            raise EngineUnavailableError(
                f"model {model_name} is a DeepGPU-LLM (aiacc) model but the vendor package "
                f"'{VENDOR_PACKAGE}' (module {VENDOR_PACKAGE}.{class_name}) is not importable: "
                f"{exc}. Run the image built from app_images/llm/Dockerfile.aiacc on a GPU node, "
                f"or serve the open-source model instead."
            ) from exc
        self._model_class = getattr(module, class_name)

    def _tokenizer_source(self) -> Path:
        if (self.model_dir / "tokenizer_config.json").exists() or self.tokenizer_dir is None:
            return self.model_dir
        return self.tokenizer_dir  # converted dirs may lack the tokenizer; use the HF source

    def load(self) -> None:
        self._load_tokenizer(self._tokenizer_source())
        self.model = self._vendor_model()

    def _vendor_model(self) -> Any:
        return self._model_class(
            str(self.model_dir),
            gpu_id="0",
            gpu_num=1,
            precision="int8" if self.load_8bit else "fp16",
        )

    def _vendor_generate(self, prompt: str, options: SamplingOptions) -> Iterable[Any]:
        return self.model.generate(
            [prompt],
            max_generated_length=options.max_tokens,
            top_k=0 if options.temperature else 1,
            top_p=options.top_p,
            temperature=max(options.temperature, 1e-5),
            streaming=True,
        )

    async def generate(self, prompt: str, options: SamplingOptions) -> AsyncGenerator[Chunk, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def run() -> None:
            try:
                for partial in self._vendor_generate(prompt, options):
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, _as_text(partial))
            except Exception as exc:  # noqa: BLE001 - re-raised in the awaiting coroutine
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        threading.Thread(target=run, name="deepgpu-generate", daemon=True).start()
        emitted = ""
        counted = 0
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise item
                delta = item[len(emitted) :] if item.startswith(emitted) else item
                emitted = item if item.startswith(emitted) else emitted + item
                total = self.count_tokens(emitted)  # vendor reports text; usage needs tokens
                yield Chunk(text=delta, tokens=total - counted)
                counted = total
            reason = "length" if counted >= options.max_tokens else "stop"
            yield Chunk(text="", tokens=0, finish_reason=reason)
        finally:
            cancelled.set()


def _as_text(partial: Any) -> str:
    """The vendor yields a list with one string per prompt (we send one prompt)."""
    if isinstance(partial, (list, tuple)):
        partial = partial[0]
    return str(partial)
