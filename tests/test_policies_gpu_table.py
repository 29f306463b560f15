"""One GPU family table: the file the policy pack ships is the file the program reads, and both
readers classify every instance type alike.
"""

import importlib

import pytest

from components import catalog, contract
from tools.checks.policy_runner import load_policies

load_policies()
PACK = importlib.import_module("chatchat_policies.gpu_table")
PACK_GPU = importlib.import_module("chatchat_policies.gpu")

INSTANCE_TYPES = [
    "ecs.gn6v-c8g1.2xlarge",
    "ecs.gn6v-c10g1.20xlarge",
    "ecs.gn6e-c12g1.3xlarge",
    "ecs.gn7i-c8g1.2xlarge",
    "ecs.gn7i-c16g1.4xlarge",
    "ecs.gn6i-c4g1.xlarge",
    "ecs.vgn6i-m4.xlarge",
    "ecs.vgn7i-vws-m4.xlarge",
    "ecs.sgn7i-vws-m2.xlarge",
    "ecs.vgn5i-m1.large",
    "ecs.gn7e-c16g1.4xlarge",
    "ecs.gn8is-2x.8xlarge",
    "ecs.ebmgn7e.32xlarge",
    "ecs.g7.xlarge",
    "ecs.c7.2xlarge",
    "not-an-instance-type",
]


def test_program_reads_the_file_the_pack_ships():
    assert catalog.GPU_FAMILIES_FILE.resolve() == PACK.DATA_FILE.resolve()
    assert PACK.DATA_FILE.is_relative_to(PACK.__file__.rsplit("/", 1)[0])


@pytest.mark.parametrize("family", sorted(catalog.GPU_FAMILIES))
def test_same_memory_and_support(family):
    ours, theirs = PACK.GPU_FAMILIES[family], catalog.GPU_FAMILIES[family]
    assert (ours.gpu_model, ours.gpu_memory_gib, ours.supported, ours.refusal) == (
        theirs.gpu_model,
        theirs.gpu_memory_gib,
        theirs.supported,
        theirs.refusal,
    )


@pytest.mark.parametrize("instance_type", INSTANCE_TYPES)
def test_same_classification_of_instance_types(instance_type):
    ours, theirs = PACK.gpu_family_of(instance_type), catalog.gpu_family_of(instance_type)
    if theirs is None:
        assert ours is None
    else:
        assert ours is not None
        assert (ours.family, ours.gpu_memory_gib, ours.supported, ours.refusal) == (
            theirs.family,
            theirs.gpu_memory_gib,
            theirs.supported,
            theirs.refusal,
        )


def test_only_v100_and_a10_are_supported():
    supported = {f.gpu_model for f in PACK.GPU_FAMILIES.values() if f.supported}
    assert supported == {"NVIDIA V100", "NVIDIA A10"}


def test_pack_reads_the_labels_and_annotations_of_the_contract():
    assert (
        PACK_GPU.MEMORY_LABEL,
        PACK_GPU.FAMILY_LABEL,
        PACK_GPU.ECI_LABEL,
        PACK_GPU.ECI_SPECS,
        PACK_GPU.REQUIRED_GIB,
    ) == (
        contract.GPU_MEMORY_LABEL,
        contract.GPU_FAMILY_LABEL,
        contract.ECI_LABEL,
        contract.ECI_SPECS_ANNOTATION,
        contract.GPU_MEMORY_REQUIRED_ANNOTATION,
    )
