"""The model catalog and the GPU instance families: one table, read by config validation,
components, tools and (as a copy of the GPU table) the policy pack.

The model rows live in `model_catalog.json` beside this file, because the llm image reads the
same data (it keeps a byte-identical copy; `tests/test_catalog.py` proves they agree).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MODEL_ROOT = "/llm-model"

# Working memory on top of the weights: CUDA context plus activations and a KV cache for one
# full-context request. A model fits a card when weights * (1 + ACTIVATION_FRACTION) +
# CUDA_CONTEXT_GIB <= the card's memory. Chosen so that, as the chart warns, a 7B fp16 model
# does not fit a 16 GB V100 and a 13B fp16 model does not fit a 24 GB A10.
ACTIVATION_FRACTION = 0.10
CUDA_CONTEXT_GIB = 1.0


@dataclass(frozen=True)
class Model:
    name: str
    directory: str
    kind: Literal["aiacc", "huggingface"]
    family: str
    params_b: float
    weights_fp16_gib: float
    weights_int8_gib: float
    context_length: int
    eci: bool
    source_model: str | None
    converter_model_name: str | None

    @property
    def is_aiacc(self) -> bool:
        return self.kind == "aiacc"

    @property
    def path(self) -> str:
        return f"{MODEL_ROOT}/{self.directory}"

    def effective_load8bit(self, load8bit: bool) -> bool:
        """What the engine really loads. Only DeepGPU-LLM (`*-aiacc`) honours int8: open-source
        models are served by vLLM on a GPU (`dtype="float16"`, app_images/llm
        engines/vllm_engine.py) and by transformers on CPU, both fp16 whatever `load8bit` says;
        the chart also forces int8 off for open-source Qwen."""
        if self.kind == "huggingface":
            return False
        return load8bit

    def weights_gib(self, load8bit: bool) -> float:
        return self.weights_int8_gib if self.effective_load8bit(load8bit) else self.weights_fp16_gib

    def required_gpu_gib(self, load8bit: bool) -> float:
        weights = self.weights_gib(load8bit)
        return round(weights * (1 + ACTIVATION_FRACTION) + CUDA_CONTEXT_GIB, 1)

    def fits(self, family: GpuFamily, load8bit: bool) -> bool:
        return family.supported and self.required_gpu_gib(load8bit) <= family.gpu_memory_gib


@dataclass(frozen=True)
class GpuFamily:
    family: str  # ECS instance family, e.g. "ecs.gn7i"
    gpu_model: str
    gpu_memory_gib: int  # per card
    supported: bool
    refusal: str | None = None  # why a refused family is refused

    @property
    def label(self) -> str:
        """Value for node labels: `gn7i`, never the dotted family."""
        return self.family.removeprefix("ecs.")


# Supported: V100 and A10 only (the seed: "V100, A10 only, no vGPU"). The others are named only to
# be refused with a reason.
GPU_FAMILIES: dict[str, GpuFamily] = {
    f.family: f
    for f in (
        GpuFamily("ecs.gn6v", "NVIDIA V100", 16, True),
        GpuFamily("ecs.gn6e", "NVIDIA V100", 32, True),
        GpuFamily("ecs.gn7i", "NVIDIA A10", 24, True),
        GpuFamily("ecs.gn6i", "NVIDIA T4", 16, False,
                  "T4 is not supported by the seed (V100, A10)"),
        GpuFamily("ecs.vgn6i", "NVIDIA T4 vGPU", 4, False, "vGPU families are not supported"),
        GpuFamily("ecs.vgn7i-vws", "NVIDIA A10 vGPU", 6, False, "vGPU families are not supported"),
        GpuFamily("ecs.sgn7i-vws", "NVIDIA A10 shared", 6, False,
                  "shared-GPU families are not supported"),
    )
}
SUPPORTED_GPU_FAMILIES = tuple(f for f, g in GPU_FAMILIES.items() if g.supported)

# ECS instance type: ecs.<family>-<size>, e.g. ecs.gn7i-c8g1.2xlarge, ecs.gn6v-c8g1.2xlarge.
_INSTANCE_TYPE = re.compile(r"^(ecs\.[a-z0-9]+(?:-vws)?)[-.]")


def instance_family(instance_type: str) -> str | None:
    match = _INSTANCE_TYPE.match(instance_type)
    return match.group(1) if match else None


def gpu_family_of(instance_type: str) -> GpuFamily | None:
    """The GPU family of an ECS instance type, or None for a type that is not a known GPU type.

    vGPU and shared families (`ecs.vgn*`, `ecs.sgn*`) are recognised by prefix so that every
    size of them is refused, not only the ones in the table.
    """
    family = instance_family(instance_type)
    if family is None:
        return None
    if family in GPU_FAMILIES:
        return GPU_FAMILIES[family]
    if family.startswith(("ecs.vgn", "ecs.sgn")):
        return GpuFamily(family, "vGPU / shared GPU", 0, False, "vGPU families are not supported")
    if family.startswith("ecs.gn") or family.startswith("ecs.ebmgn"):
        return GpuFamily(family, "unknown GPU", 0, False, "only V100 (gn6v, gn6e) and A10 (gn7i)")
    return None


def _load_models() -> dict[str, Model]:
    raw = json.loads((Path(__file__).with_name("model_catalog.json")).read_text(encoding="utf-8"))
    return {name: Model(name=name, **row) for name, row in raw["models"].items()}


MODELS: dict[str, Model] = _load_models()
