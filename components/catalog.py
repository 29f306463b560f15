"""The model catalog and the GPU instance families, read by config validation, components and
tools.

The model rows live in `model_catalog.json` beside this file, because the llm image reads the
same data (it keeps a byte-identical copy; `tests/test_catalog.py` proves they agree). The GPU
families live in the policy pack's `data/gpu_families.json`: the pack ships that file so it stays
installable on its own, and the program reads the same file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parent.parent
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


class GpuTable:
    """The GPU family table the policy pack ships (`GPU_FAMILIES_FILE`): the supported V100 and
    A10 families, and the refused ones with a reason, named or recognised by prefix."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        self.families = {
            name: GpuFamily(
                name, row["gpuModel"], row["gpuMemoryGib"], row["supported"], row.get("refusal")
            )
            for name, row in raw["families"].items()
        }
        self._instance_type = re.compile(raw["instanceTypePattern"])
        self._refused_prefixes = [
            (tuple(r["prefixes"]), r["gpuModel"], r["refusal"]) for r in raw["refusedPrefixes"]
        ]

    def family_of(self, instance_type: str) -> GpuFamily | None:
        match = self._instance_type.match(instance_type)
        if match is None:
            return None
        family = match.group(1)
        if family in self.families:
            return self.families[family]
        for prefixes, gpu_model, refusal in self._refused_prefixes:
            if family.startswith(prefixes):
                return GpuFamily(family, gpu_model, 0, False, refusal)
        return None


GPU_FAMILIES_FILE = REPO / "policies" / "chatchat_policies" / "data" / "gpu_families.json"
_GPU_TABLE = GpuTable(GPU_FAMILIES_FILE)
GPU_FAMILIES: dict[str, GpuFamily] = _GPU_TABLE.families


def gpu_family_of(instance_type: str) -> GpuFamily | None:
    """The GPU family of an ECS instance type (`ecs.gn7i-c8g1.2xlarge`), or None for a type that
    is not a GPU type. Every size of a vGPU, shared or unknown GPU family is refused."""
    return _GPU_TABLE.family_of(instance_type)


def _load_models() -> dict[str, Model]:
    raw = json.loads((Path(__file__).with_name("model_catalog.json")).read_text(encoding="utf-8"))
    return {name: Model(name=name, **row) for name, row in raw["models"].items()}


MODELS: dict[str, Model] = _load_models()
