"""Reads the chart's environment, resolves the model, picks the server and starts it.

Engine choice (LLM_ENGINE=auto): ``*-aiacc`` models → DeepGPU-LLM in our server; open-source
models on a GPU → vLLM's own OpenAI server (``vllm serve``, exec'd in place of this process);
no GPU → transformers in our server. LLM_ENGINE=transformers|vllm|deepgpu overrides it.
``--print-command`` prints what would be exec'd for vLLM (JSON) and exits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
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


# Our settings that `vllm serve` takes from us; LLM_VLLM_EXTRA_ARGS may not set them again.
MAPPED_VLLM_FLAGS = (
    "--served-model-name",
    "--max-model-len",
    "--dtype",
    "--gpu-memory-utilization",
    "--max-num-seqs",
    "--host",
    "--port",
    "--trust-remote-code",
    "--uvicorn-log-level",
    "--shutdown-timeout",
    "--api-key",
)


@dataclass(frozen=True)
class VllmCommand:
    argv: list[str]
    env: dict[str, str]  # added to the environment (the API key: kept out of argv and `ps`)
    notes: list[str]  # our settings vLLM has no equivalent for, logged at start


def vllm_command(plan: LaunchPlan, settings: Settings) -> VllmCommand:
    """Our settings as vLLM's own OpenAI server's command line (pinned release: 0.33.0)."""
    extra = shlex.split(settings.llm_vllm_extra_args)
    clashes = sorted({a.split("=", 1)[0] for a in extra} & set(MAPPED_VLLM_FLAGS))
    if clashes:
        raise LaunchError(
            f"LLM_VLLM_EXTRA_ARGS sets {', '.join(clashes)}, which the launcher maps from our "
            "settings (LLM_MODEL, LLM_DTYPE, LLM_GPU_MEMORY_UTILIZATION, LLM_MAX_CONCURRENCY, "
            "LLM_HOST, LLM_PORT, LLM_LOG_LEVEL, LLM_SHUTDOWN_GRACE_S, LLM_API_KEY); set those"
        )
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.cli.main",
        "serve",
        str(plan.model_dir),
        "--served-model-name",
        plan.entry.name,
        "--max-model-len",
        str(plan.entry.context_length),
        "--dtype",
        settings.llm_dtype,
        "--gpu-memory-utilization",
        str(settings.llm_gpu_memory_utilization),
        "--max-num-seqs",
        str(settings.llm_max_concurrency),
        "--host",
        settings.llm_host,
        "--port",
        str(settings.llm_port),
        # Qwen-7B-Chat, chatglm2 and Baichuan2 ship their own modelling code.
        "--trust-remote-code",
        "--uvicorn-log-level",
        settings.llm_log_level,
        "--shutdown-timeout",
        str(int(settings.llm_shutdown_grace_s)),
        *extra,
    ]
    env = {"HF_HUB_OFFLINE": "1"}
    if settings.llm_api_key is not None:
        env["VLLM_API_KEY"] = settings.llm_api_key.get_secret_value()
    notes = [
        f"LLM_MAX_QUEUE={settings.llm_max_queue} has no vLLM equivalent: vLLM queues without "
        "a bound and answers no 429",
        f"LLM_DEFAULT_MAX_TOKENS={settings.llm_default_max_tokens} has no vLLM equivalent: "
        "requests without max_tokens may use the context left",
    ]
    if plan.load_8bit:
        notes.append("LOAD_8BIT=true is ignored by vLLM: it serves --dtype weights")
    return VllmCommand(argv, env, notes)


def exec_vllm(plan: LaunchPlan, settings: Settings) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailableError(
            f"the vllm package is not installed; {plan.entry.name} on a GPU needs the CUDA "
            "image (app_images/llm/Dockerfile), or LLM_ENGINE=transformers"
        )
    command = vllm_command(plan, settings)
    for note in command.notes:
        log_event(logger, "vllm_setting_not_mapped", logging.WARNING, note=note)
    log_event(logger, "exec_vllm", argv=command.argv)
    sys.stdout.flush()
    # exec, not a child: vLLM gets the kubelet's SIGTERM and its exit code is the pod's.
    os.execve(command.argv[0], command.argv, {**os.environ, **command.env})


def build_engine(plan: LaunchPlan, settings: Settings) -> Engine:
    """Our in-process engine (transformers or DeepGPU-LLM); vLLM runs its own server."""
    args = (plan.model_dir, plan.entry.name, plan.entry.context_length, plan.load_8bit)
    if plan.engine == "transformers":
        from .engines.transformers_engine import TransformersEngine

        return TransformersEngine(*args)
    if plan.engine == "vllm":
        raise LaunchError("vLLM runs its own server (exec_vllm), not an engine in ours")
    from .engines.deepgpu_engine import DeepGpuEngine

    source = plan.entry.source_model
    tokenizer_dir = None
    if source:
        tokenizer_dir = resolve_model(source).path(settings.llm_model_root)
    return DeepGpuEngine(*args, family=plan.entry.family, tokenizer_dir=tokenizer_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--print-command",
        action="store_true",
        help="print the `vllm serve` command (argv, env names) as JSON instead of running it",
    )
    options = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.llm_log_level)
    try:
        plan = plan_launch(settings)
        if options.print_command:
            command = vllm_command(plan, settings)
            print(json.dumps({"argv": command.argv, "env": sorted(command.env)}))
            return
        if plan.engine == "vllm":
            exec_vllm(plan, settings)
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
