"""The GPU instance families, read from `data/gpu_families.json`.

That file ships inside the pack, so the pack stays installable on its own; the Pulumi program
(`components/catalog.py`) reads the very same file, and `tests/test_policies_gpu_table.py`
proves it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "gpu_families.json"


@dataclass(frozen=True)
class GpuFamily:
    family: str  # ECS instance family, e.g. "ecs.gn7i"
    gpu_model: str
    gpu_memory_gib: int  # per card
    supported: bool
    refusal: str | None = None


_TABLE = json.loads(DATA_FILE.read_text(encoding="utf-8"))
_INSTANCE_TYPE = re.compile(_TABLE["instanceTypePattern"])
GPU_FAMILIES = {
    name: GpuFamily(
        name, row["gpuModel"], row["gpuMemoryGib"], row["supported"], row.get("refusal")
    )
    for name, row in _TABLE["families"].items()
}
ALLOWED = ", ".join(
    f"{f.family} ({f.gpu_model.removeprefix('NVIDIA ')} {f.gpu_memory_gib} GiB)"
    for f in GPU_FAMILIES.values()
    if f.supported
)


def gpu_family_of(instance_type: str) -> GpuFamily | None:
    """The GPU family of an ECS instance type; None for a type that is not a GPU type."""
    match = _INSTANCE_TYPE.match(instance_type)
    family = match.group(1) if match else ""
    if family in GPU_FAMILIES:
        return GPU_FAMILIES[family]
    rule = next(
        (r for r in _TABLE["refusedPrefixes"] if family.startswith(tuple(r["prefixes"]))), None
    )
    return GpuFamily(family, rule["gpuModel"], 0, False, rule["refusal"]) if rule else None
