"""Reads the chart's environment, resolves the model, picks the engine and serves the API.

Engine choice (LLM_ENGINE=auto): ``*-aiacc`` models → DeepGPU-LLM; open-source models on a GPU
→ vLLM; no GPU → transformers. LLM_ENGINE=transformers|vllm|deepgpu overrides it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from .catalog import ModelEntry, UnknownModelError, resolve_model
from .engines.base import Engine, EngineUnavailableError
from .logs import configure_logging, log_event
from .settings import Settings, load_settings

logger = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """The configuration cannot be served; the message says which setting is wrong."""


@dataclass(frozen=True)
class LaunchPlan:
    entry: ModelEntry
    engine: str
    model_dir: Path
    load_8bit: bool


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def effective_load_8bit(entry: ModelEntry, requested: bool) -> bool:
    # The chart forces int8 off for the open-source qwen models; we keep that behaviour.
    if entry.kind == "huggingface" and entry.family == "qwen":
        return False
    return requested


def choose_engine(entry: ModelEntry, override: str, has_gpu: bool) -> str:
    if entry.is_aiacc:
        if override not in ("auto", "deepgpu"):
            raise LaunchError(
                f"LLM_ENGINE={override} cannot serve {entry.name}: aiacc models are "
                "DeepGPU-LLM converted weights and need LLM_ENGINE=deepgpu (or auto)"
            )
        return "deepgpu"
    if override == "deepgpu":
        raise LaunchError(
            f"LLM_ENGINE=deepgpu cannot serve {entry.name}: it is an open-source Hugging Face "
            f"model; use {entry.name}-aiacc for DeepGPU-LLM, or LLM_ENGINE=auto"
        )
    if override != "auto":
        return override
    return "vllm" if has_gpu else "transformers"


def plan_launch(settings: Settings, has_gpu: bool | None = None) -> LaunchPlan:
    try:
        entry = resolve_model(settings.llm_model)
    except UnknownModelError as exc:
        raise LaunchError(str(exc)) from exc
    if has_gpu is None:
        has_gpu = gpu_available()
    engine = choose_engine(entry, settings.llm_engine, has_gpu)
    model_dir = entry.path(settings.llm_model_root)
    if not model_dir.is_dir():
        raise LaunchError(
            f"model directory {model_dir} for LLM_MODEL={entry.name} does not exist under "
            f"LLM_MODEL_ROOT={settings.llm_model_root}"
        )
    return LaunchPlan(entry, engine, model_dir, effective_load_8bit(entry, settings.load_8bit))


def build_engine(plan: LaunchPlan, settings: Settings) -> Engine:
    args = (plan.model_dir, plan.entry.name, plan.entry.context_length, plan.load_8bit)
    if plan.engine == "transformers":
        from .engines.transformers_engine import TransformersEngine

        return TransformersEngine(*args)
    if plan.engine == "vllm":
        from .engines.vllm_engine import VllmEngine

        return VllmEngine(*args)
    from .engines.deepgpu_engine import DeepGpuEngine

    source = plan.entry.source_model
    tokenizer_dir = None
    if source:
        tokenizer_dir = resolve_model(source).path(settings.llm_model_root)
    return DeepGpuEngine(*args, family=plan.entry.family, tokenizer_dir=tokenizer_dir)


def main() -> None:
    settings = load_settings()
    configure_logging(settings.llm_log_level)
    try:
        plan = plan_launch(settings)
        engine = build_engine(plan, settings)
    except (LaunchError, EngineUnavailableError) as exc:
        log_event(logger, "launch_failed", logging.ERROR, error=str(exc))
        print(f"llm launcher: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    log_event(
        logger,
        "launching",
        model=plan.entry.name,
        engine=plan.engine,
        model_dir=str(plan.model_dir),
        load_8bit=plan.load_8bit,
        port=settings.llm_port,
    )

    import uvicorn

    from .api import create_app

    uvicorn.run(
        create_app(engine, settings, plan.entry.name),
        host=settings.llm_host,
        port=settings.llm_port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.llm_shutdown_grace_s) + 5,
    )


if __name__ == "__main__":
    main()
