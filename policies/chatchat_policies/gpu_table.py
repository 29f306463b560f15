"""The pack's own copy of the GPU instance family table.

The pack stands alone (it runs in its own virtualenv and never imports the Pulumi program), so it
keeps this copy; `tests/test_policies_gpu_table.py` proves it agrees with
`components/catalog.py` GPU_FAMILIES and `gpu_family_of`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuFamily:
    family: str  # ECS instance family, e.g. "ecs.gn7i"
    gpu_model: str
    gpu_memory_gib: int  # per card
    supported: bool
    refusal: str | None = None


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
ALLOWED = "ecs.gn6v (V100 16 GiB), ecs.gn6e (V100 32 GiB), ecs.gn7i (A10 24 GiB)"

_INSTANCE_TYPE = re.compile(r"^(ecs\.[a-z0-9]+(?:-vws)?)[-.]")


def gpu_family_of(instance_type: str) -> GpuFamily | None:
    """The GPU family of an ECS instance type; None for a type that is not a GPU type.

    Every vGPU / shared family (`ecs.vgn*`, `ecs.sgn*`) and every other GPU family (`ecs.gn*`,
    `ecs.ebmgn*`) not in the table is recognised by prefix and refused.
    """
    match = _INSTANCE_TYPE.match(instance_type)
    if match is None:
        return None
    family = match.group(1)
    if family in GPU_FAMILIES:
        return GPU_FAMILIES[family]
    if family.startswith(("ecs.vgn", "ecs.sgn")):
        return GpuFamily(family, "vGPU / shared GPU", 0, False, "vGPU families are not supported")
    if family.startswith(("ecs.gn", "ecs.ebmgn")):
        return GpuFamily(family, "unknown GPU", 0, False, "only V100 (gn6v, gn6e) and A10 (gn7i)")
    return None
