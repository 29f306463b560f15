"""What does switching the model do? Checks and a diff before anyone applies it.

    python -m tools model-change --stack dev --model qwen-14b-chat-aiacc
    python -m tools model-change --stack prod --model chatglm2-6b --instance-type eci \\
        --nas-path /mnt/nas --markdown model-change.md

1. Validates the change with the stack's own config rules: the model is in the catalog, it fits
   the GPU of some pool (int8 where asked), a DeepGPU-LLM (`*-aiacc`) model is not put on ECI.
2. Checks the model files are in the model store: OSS through its S3 API (bucket from `--bucket`
   or the stack's outputs), NAS through `--nas-path`; says whether the conversion Job will run.
   `--no-store-check` skips this and says so.
3. Renders the stack offline before and after and diffs them: only the llm workload may change;
   anything else, and any replacement of a stateful resource, is flagged dangerous.
4. With `--automation`, where the Pulumi CLI and credentials exist, runs the same change as a
   real `pulumi preview --diff` on a copy of the project and summarises the engine's events.

Exit codes: 0 safe, 1 invalid change, 2 dangerous change (unless `--allow-dangerous`). The stack
file changes only with `--save`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from components import llm_capacity
from components.catalog import MODELS
from components.config import ConfigError, Llm, StackConfig, parse_config, raw_from_config_map
from tools.checks.model_store import (
    ModelStoreError,
    NasStore,
    OssStore,
    Store,
    bucket_from_outputs,
    check_model,
)
from tools.cli import command_parser, legacy_entry
from tools.offline.engine import RenderError
from tools.offline.stack_files import STACKS_DIR, apply_overrides, read_stack_file
from tools.preview.change import add_preview_arguments, describe, finish, preview
from tools.preview.report import EXIT_INVALID, Report


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"llm.model": args.model}
    if args.load8bit is not None:
        overrides["llm.load8bit"] = args.load8bit
    if args.instance_type is not None:
        overrides["llm.pod.instanceType"] = args.instance_type
    if args.model_pvc is not None:
        overrides["llm.modelPVC"] = args.model_pvc or None
    return overrides


def validate(
    report: Report, stack: str, overrides: dict[str, Any], stacks_dir: Path = STACKS_DIR
) -> StackConfig | None:
    """Catalog, GPU fit, ECI and conversion checks; the config rules themselves decide."""
    name = overrides["llm.model"]
    model = MODELS.get(name)
    if model is None:
        report.problems.append(f"llm.model: unknown model {name!r}; allowed: {', '.join(MODELS)}")
        return None
    kind = "DeepGPU-LLM converted (aiacc)" if model.is_aiacc else "Hugging Face"
    report.checks.append(("ok", f"{name} is in the catalog: {kind}, directory {model.path}"))
    try:
        config = apply_overrides(read_stack_file(stack, stacks_dir), overrides)
        cfg = parse_config(raw_from_config_map(config), stack)
    except ConfigError as exc:
        report.problems += [f"{path}: {message}" for path, message in exc.problems]
        return None
    except ValueError as exc:  # an override into a key that is not a mapping (`llm: oops`)
        report.problems.append(str(exc))
        return None
    llm = cfg.llm
    precision = "int8" if llm.effective_load8bit else "fp16"
    needed = model.required_gpu_gib(llm.load8bit)
    if llm.load8bit and not llm.effective_load8bit:
        report.checks.append(
            (
                "warn",
                f"llm.load8bit=true is ignored for {name}: open-source Qwen loads in fp16 only",
            )
        )
    if llm.pod.instance_type == "eci":
        specs = ", ".join(cfg.eci_specs("llm"))
        report.checks.append(
            ("ok", f"runs on ECI ({specs}); needs {needed} GiB GPU memory ({precision})")
        )
    else:
        fits = []
        for pool in cfg.gpu_pools_fitting_llm():
            family = pool.gpu_family
            fits.append(f"{pool.name} ({family.gpu_model} {family.gpu_memory_gib} GiB)")
        report.checks.append(
            ("ok", f"fits GPU pool(s) {', '.join(fits)}: needs {needed} GiB per card ({precision})")
        )
    if model.is_aiacc:
        report.checks.append(
            (
                "ok",
                f"DeepGPU-LLM model on ECS; converted from {model.source_model}"
                " by the conversion Job when not converted yet",
            )
        )
    report.checks += capacity_checks(cfg)
    return cfg


def capacity_checks(cfg: StackConfig) -> list[tuple[str, str]]:
    """The GPU nodes the new model needs, whether its rollout is gap-free, and its cold start."""
    plan, start = llm_capacity.rollout(cfg), llm_capacity.cold_start(cfg)
    need = (plan.peak_replicas + 1) * plan.gpus_per_pod
    pools = "ECI (no pool limit)" if plan.gpu_nodes is None else f"{plan.gpu_nodes} GPU node(s)"
    cold = (
        f"cold start: {start.weights_gib:g} GiB of weights from {start.store} at "
        f"~{start.read_mb_per_s:g} MB/s = about {start.seconds:.0f}s per new pod"
    )
    if start.fill_seconds is not None:
        filler = "the warm-up DataLoad, before the llm starts" if start.warm_up else "the first pod"
        cold += (
            f" once warm; filling the cache reads OSS at ~{start.fill_mb_per_s:g} MB/s = about "
            f"{start.fill_seconds:.0f}s, done by {filler}"
        )
    return [
        (
            "ok",
            f"capacity: up to {plan.peak_replicas} replica(s) x {plan.gpus_per_pod} GPU(s); "
            f"a surge pod needs {need} GPU node(s), the pools that fit allow {pools}",
        ),
        ("ok" if plan.gap_free else "warn", f"rollout: {plan.statement}"),
        (
            "ok",
            f"{cold} (a lower bound: node start, image pull and engine warm-up add to it; the "
            "bandwidth is a planning figure, cloud facts serving.modelStoreReadMBps)",
        ),
    ]


def check_store(report: Report, args: argparse.Namespace, cfg: StackConfig) -> None:
    if args.no_store_check:
        report.checks.append(("skip", "model store NOT checked (--no-store-check)"))
        return
    model = MODELS[cfg.llm.model]
    try:
        store = _open_store(args, cfg)
        if store is None:
            return
        result = check_model(model, store)
    except ModelStoreError as exc:
        report.problems.append(f"model store: {exc}")
        return
    if result.ok:
        report.checks += [("ok", f"model store: {note}") for note in result.notes]
    else:
        report.problems += [f"model store: {problem}" for problem in result.problems]


def _open_store(args: argparse.Namespace, cfg: StackConfig) -> Store | None:
    if args.nas_path:
        return NasStore(args.nas_path)
    if cfg.llm.model_pvc:
        raise ModelStoreError(
            f"llm.modelPVC={cfg.llm.model_pvc} is a PVC you manage: pass "
            "--nas-path where its storage is mounted, or --no-store-check"
        )
    if cfg.model_store.type == "nas":
        raise ModelStoreError(
            "the stack keeps models on NAS: pass --nas-path where the file "
            "system is mounted, or --no-store-check"
        )
    bucket = args.bucket or _bucket_from_stack(args.stack)
    if not bucket:
        raise ModelStoreError(
            "the model bucket is unknown: pass --bucket (the stack's model "
            "bucket output), run where `pulumi stack output` works, or pass "
            "--no-store-check"
        )
    return OssStore(
        bucket,
        cfg.model_store.prefix,
        cfg.region,
        endpoint=args.oss_endpoint,
        addressing_style=args.oss_addressing_style,
    )


def _bucket_from_stack(stack: str) -> str | None:
    from pulumi.automation import CommandError

    from tools.preview.automation import stack_outputs, unavailable_reason

    if unavailable_reason() is not None:
        return None
    try:
        return bucket_from_outputs(stack_outputs(stack))
    except (CommandError, OSError):  # not logged in, stack not created yet
        return None


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("model-change", __doc__)
    add_preview_arguments(parser)
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(MODELS)}")
    parser.add_argument("--load8bit", type=_bool, metavar="true|false", help="llm.load8bit")
    parser.add_argument("--instance-type", choices=("ecs", "eci"), help="llm.pod.instanceType")
    parser.add_argument("--model-pvc", help="llm.modelPVC (an existing PVC; empty: the stack's)")
    parser.add_argument(
        "--no-store-check",
        action="store_true",
        help="do not check that the model files are in the model store",
    )
    parser.add_argument("--bucket", help="OSS bucket holding the models (default: stack output)")
    parser.add_argument(
        "--oss-endpoint", help="S3-compatible endpoint (default: https://oss-<region>.aliyuncs.com)"
    )
    parser.add_argument(
        "--oss-addressing-style",
        choices=("virtual", "path"),
        default="virtual",
        help="OSS needs virtual (the default); path for S3-compatible test servers",
    )
    parser.add_argument(
        "--nas-path",
        help="a mounted directory whose content the pods see as "
        "/llm-model (NAS, or llm.modelPVC's storage)",
    )
    args = parser.parse_args(argv)
    try:
        raw = raw_from_config_map(read_stack_file(args.stack, args.stacks_dir))
    except (FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID

    overrides = overrides_from(args)
    llm_raw = raw.get("llm")
    llm = llm_raw if isinstance(llm_raw, dict) else {}  # bad shapes are validate()'s to report
    current = llm.get("model", Llm.model_fields["model"].default)
    title = f"Model change on stack {args.stack}: {current} → {args.model}"
    extra = {k: v for k, v in overrides.items() if k != "llm.model"}
    if extra:
        title += f" ({describe(extra)})"
    report = Report(title, allow_dangerous=args.allow_dangerous)
    cfg = validate(report, args.stack, overrides, args.stacks_dir)
    if cfg is not None:
        check_store(report, args, cfg)
        try:
            preview(
                report,
                args.stack,
                overrides,
                model_scope=True,
                automation=args.automation,
                engine_events=args.engine_events,
                stacks_dir=args.stacks_dir,
            )
        except RenderError as exc:
            report.problems.append(f"cannot render stack {args.stack}: {exc}")
    return finish(report, args, overrides)


if __name__ == "__main__":
    sys.exit(legacy_entry("model-change"))
