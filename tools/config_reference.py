"""Print the stack-config reference (every key, its allowed values and default) as Markdown.

    python -m tools config-reference

The table in README.md is this command's output; a test keeps the two identical.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from components.catalog import MODELS
from components.config import StackConfig
from tools.cli import command_parser, legacy_entry

# What a key means, where the name alone does not say it (chart keys keep the chart's meaning).
NOTES = {
    "release": "Helm-style release name: namespace, `chat-<release>` and `llm-<release>`",
    "production": "protect stateful resources; production policies apply",
    "tags.owner": "tag on every taggable resource, with `project` and `stack`",
    "cluster.gpuPools[].instanceTypes": "V100 (`ecs.gn6v-*`, `ecs.gn6e-*`) or A10 (`ecs.gn7i-*`)"
    "; T4 and vGPU refused",
    "cluster.gpuPools[].spotPriceLimit": "hourly bid cap (CNY) per spot instance; unset: up to "
    "the pay-as-you-go price",
    "llm.model": "chart value; one of: " + ", ".join(f"`{m}`" for m in MODELS),
    "llm.load8bit": "chart value; int8 weights (forced off for open-source qwen)",
    "llm.modelPVC": "chart value; existing PVC with the models (default: the stack makes one)",
    "llm.pod.replicas": "chart value",
    "chat.pod.replicas": "chart value",
    "llm.pod.instanceType": "chart value; `eci` cannot run `*-aiacc` models",
    "chat.pod.instanceType": "chart value",
    "chat.pod.resources.limits": 'chart value; `nvidia.com/gpu: "1"` embeds on a GPU: the pod '
    "goes to a GPU pool (or GPU `eciSpecs`) with the GPU toleration and `EMBEDDING_DEVICE=cuda`",
    "chat.image.variant": "`cuda`: the CUDA build, tag `<tag>-cuda`; `auto`: `cuda` when "
    "`chat.pod.resources` has `nvidia.com/gpu`, else `cpu`",
    "chat.kbPVC": "chart value; existing PVC for knowledge-base files",
    "chat.imports": "bulk imports, each an Indexed Job (README, Fill a knowledge base from OSS)",
    "chat.imports[].knowledgeBase": "the chat service's name rules: any script, at most 100 "
    "characters, no `/`, `\\`, control characters, `.` or `..`",
    "chat.imports[].source.oss.bucket": "give exactly one of `oss`, `nas`, `pvc`; a bucket of "
    "the stack's region, mounted read-only through RRSA",
    "chat.imports[].source.oss.prefix": "directory in the bucket (`manuals` or `a/b`)",
    "chat.imports[].source.nas.server": "NAS mount-target domain in the VPC (NFSv3, read-only)",
    "chat.imports[].source.pvc": "existing claim in the release namespace (with `subPath`)",
    "chat.imports[].parallelism": "pods at once; a `gpu` import at most the GPU pools' "
    "summed `maxSize`",
    "chat.imports[].shards": "Job completions (default `parallelism`), at least `parallelism`",
    "chat.imports[].gpu": "one card per pod on a GPU pool, the chat image's CUDA build",
    "chat.imports[].resources.requests": 'default `cpu: "2"`, `memory: 4Gi`',
    "chat.imports[].retriesPerShard": "`backoffLimitPerIndex`; evictions do not count",
    "chat.imports[].maxFailedShards": "`maxFailedIndexes`; unset: every shard runs",
    "chat.imports[].rerun": "raise to run the import again (stored files are skipped)",
    "chat.kb.accessMode": "more than one chat replica needs `ReadWriteMany`",
    "db.dbType": "chart value; `adb` makes an AnalyticDB for PostgreSQL instance",
    "db.embeddingModel": "chart value; directory under `/llm-model`",
    "db.adb.instanceSpec": "per segment, at least `4C16G`",
    "modelStore.type": "where models live: OSS bucket or NAS file system",
    "modelStore.acceleration.type": "`fluid`: the llm reads the model through a Fluid "
    "JindoRuntime cache (addon ack-fluid; OSS only; README, Faster model loads with Fluid)",
    "modelStore.acceleration.fluid.medium": "`MEM`: in memory (/dev/shm) on the worker node; "
    "`SSD`: a directory on its system disk",
    "modelStore.acceleration.fluid.quota": "cache per worker; quota x workers must hold the "
    "model's files (catalog fp16 size)",
    "modelStore.acceleration.fluid.workers": "cache workers, one per node of `workerPool`",
    "modelStore.acceleration.fluid.workerPool": "`system` or a GPU pool's name (workers at "
    "most its `minSize`)",
    "modelStore.acceleration.fluid.warmUp": "a DataLoad fills the cache with the model "
    "directory before the llm starts",
    "modelStore.acceleration.fluid.credentialsSecret": "required with `fluid`: existing Secret "
    "in the release namespace with keys `fs.oss.accessKeyId`, `fs.oss.accessKeySecret` "
    "(JindoRuntime has no RRSA)",
    "llm.autoscaling.enabled": "KEDA ScaledObject (addon `ack-keda`) on requests waiting + "
    "running; needs `monitoring.prometheusUrl`",
    "llm.autoscaling.maxReplicas": "times GPUs per pod must fit the fitting GPU pools' `maxSize`",
    "llm.autoscaling.minReplicas": "`0`: scale to zero after `idleMinutes` (not in production); "
    "the first request after idle (a 503 + Retry-After, counted by the chat API) wakes it",
    "llm.autoscaling.wakeSchedule": "optional cron `start`/`end` window holding `wakeReplicas` "
    "(a loaded model for working hours)",
    "monitoring.auth": "`basic` for ARMS Prometheus V2 instances (HTTP Basic with an AccessKey): "
    "a Secret + KEDA TriggerAuthentication",
    "monitoring.username": "with `auth: basic`: the AccessKey ID of a RAM user with "
    "AliyunPrometheusMetricReadAccess",
    "prometheusPassword": "secret (`pulumi config set --secret`): that user's AccessKey secret",
    "monitoring.prometheusUrl": "the managed Prometheus instance's internal HTTP API URL (ARMS "
    "console, Settings)",
    "monitoring.scraperNamespace": "namespace of the managed Prometheus agent, let through the "
    "NetworkPolicy to `/metrics` (llm 8888, chat API 7861)",
    "network.podCidr": "kept for Flannel clusters; Terway (used, for NetworkPolicy) gives pods "
    "vSwitch addresses",
}

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def _allowed(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_allowed(a) for a in args if a is not type(None)) + " (optional)"
    if origin is typing.Annotated:
        return _allowed(args[0])
    if origin is list:
        return f"list of {_allowed(args[0])}"
    if origin is dict:
        return "map of string"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        return "**required**"
    value = field.default
    if isinstance(value, BaseModel):
        return "(see below)"
    return f"`{json.dumps(value)}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if name == "stack":
            continue  # the stack name, not a key
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        nested = next(
            (
                a
                for a in (annotation, *typing.get_args(annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if nested is not None and typing.get_origin(annotation) is not list:
            rows += _rows(nested, f"{key}.")
            continue
        if nested is not None:
            rows.append(
                f"| `{key}` | list of objects (fields below) | {_default(field)} | "
                f"{NOTES.get(key, '')} |"
            )
            rows += _rows(nested, f"{key}[].")
            continue
        rows.append(
            f"| `{key}` | {_allowed(annotation)} | {_default(field)} | {NOTES.get(key, '')} |"
        )
    return rows


def reference() -> str:
    header = ["| key | allowed | default | notes |", "|---|---|---|---|"]
    lines = [BEGIN, *header, *_rows(StackConfig, ""), END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    command_parser("config-reference", __doc__).parse_args(argv)
    print(reference())
    return 0


if __name__ == "__main__":
    sys.exit(legacy_entry("config-reference"))
