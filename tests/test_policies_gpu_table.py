"""The pack's copy of the GPU family table agrees with components/catalog.py.

The pack runs in its own virtualenv and never imports the Pulumi program, so it keeps a copy;
this test is what keeps the two from drifting.
"""

import importlib

import pytest

from components import catalog
from tools.checks.policy_runner import load_policies

load_policies()
PACK = importlib.import_module("chatchat_policies.gpu_table")

INSTANCE_TYPES = [
    "ecs.gn6v-c8g1.2xlarge", "ecs.gn6v-c10g1.20xlarge", "ecs.gn6e-c12g1.3xlarge",
    "ecs.gn7i-c8g1.2xlarge", "ecs.gn7i-c16g1.4xlarge", "ecs.gn6i-c4g1.xlarge",
    "ecs.vgn6i-m4.xlarge", "ecs.vgn7i-vws-m4.xlarge", "ecs.sgn7i-vws-m2.xlarge",
    "ecs.vgn5i-m1.large", "ecs.gn7e-c16g1.4xlarge", "ecs.gn8is-2x.8xlarge",
    "ecs.ebmgn7e.32xlarge", "ecs.g7.xlarge", "ecs.c7.2xlarge", "not-an-instance-type",
]


def test_same_families():
    assert set(PACK.GPU_FAMILIES) == set(catalog.GPU_FAMILIES)


@pytest.mark.parametrize("family", sorted(catalog.GPU_FAMILIES))
def test_same_memory_and_support(family):
    ours, theirs = PACK.GPU_FAMILIES[family], catalog.GPU_FAMILIES[family]
    assert (ours.gpu_model, ours.gpu_memory_gib, ours.supported, ours.refusal) == (
        theirs.gpu_model, theirs.gpu_memory_gib, theirs.supported, theirs.refusal)


@pytest.mark.parametrize("instance_type", INSTANCE_TYPES)
def test_same_classification_of_instance_types(instance_type):
    ours, theirs = PACK.gpu_family_of(instance_type), catalog.gpu_family_of(instance_type)
    if theirs is None:
        assert ours is None
    else:
        assert ours is not None
        assert (ours.family, ours.gpu_memory_gib, ours.supported) == (
            theirs.family, theirs.gpu_memory_gib, theirs.supported)


def test_only_v100_and_a10_are_supported():
    supported = {f.gpu_model for f in PACK.GPU_FAMILIES.values() if f.supported}
    assert supported == {"NVIDIA V100", "NVIDIA A10"}
