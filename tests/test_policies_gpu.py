"""GPU policies: V100/A10 only, memory per card, model fit, DeepGPU-LLM off ECI, node cap."""

from tests.policy_helpers import GOOD, Case, PolicyCases

HF_MODEL = (
    ("chatchat.io/model", "qwen-7b-chat"),
    ("chatchat.io/model-kind", "huggingface"),
    ("chatchat.io/gpu-memory-required-gib", "17.5"),
)
NEEDS_17 = (("chatchat.io/gpu-memory-required-gib", "17.5"),)


CASES = [
    Case(
        "gpu-pod-without-a-pool",
        "gpu-pods-fit-gpu-pools",
        GOOD.but(llm_tolerates_gpu=False),
        "llm-chatchat",
        "tolerate the nvidia.com/gpu taint",
    ),
    Case(
        "gpu-import-job-without-a-pool",
        "gpu-pods-fit-gpu-pools",
        GOOD.but(import_parallelism=1, import_tolerates_gpu=False),
        "Job chatchat/import-manuals",
        "tolerate the nvidia.com/gpu taint",
        passing=GOOD.but(import_parallelism=1),
    ),
    Case(
        "gpu-import-job-wider-than-its-pools",
        "gpu-pods-fit-gpu-pools",
        GOOD.but(import_parallelism=3),  # pool_max 2
        "Job chatchat/import-manuals",
        "lower parallelism",
        passing=GOOD.but(import_parallelism=2),
    ),
    Case(
        "t4-pool",
        "gpu-family-allowed",
        GOOD.but(pool_types=("ecs.gn6i-c4g1.xlarge",)),
        "gpu-a10",
        "ecs.gn7i",
    ),
    Case(
        "vgpu-pool",
        "gpu-family-allowed",
        GOOD.but(pool_types=("ecs.vgn6i-m4.xlarge",)),
        "gpu-a10",
        "ecs.gn6v",
    ),
    Case(
        "unknown-gpu-family",
        "gpu-family-allowed",
        GOOD.but(pool_types=("ecs.gn8is-2x.8xlarge",)),
        "gpu-a10",
        "ecs.gn7i",
    ),
    Case(
        "shared-gpu-scheduling",
        "gpu-family-allowed",
        GOOD.but(pool_labels=(("ack.node.gpu.schedule", "cgpu"),)),
        "gpu-a10",
        "remove the label",
    ),
    Case(
        "t4-eci-spec",
        "gpu-family-allowed",
        GOOD.but(llm_eci_specs="ecs.gn6i-c4g1.xlarge"),
        "llm-chatchat",
        "ecs.gn7i",
    ),
    Case(
        "v100-16g-pool",
        "gpu-memory-per-card",
        GOOD.but(pool_types=("ecs.gn6v-c8g1.2xlarge",)),
        "gpu-a10",
        "ecs.gn7i",
    ),
    Case(
        "a10-under-configured-minimum",
        "gpu-memory-per-card",
        GOOD,
        "gpu-a10",
        "ecs.gn6e",
        passing=GOOD.but(pool_types=("ecs.gn6e-c12g1.3xlarge",)),
        config={"gpu-memory-per-card": {"minGpuMemoryGib": 32}},
    ),
    Case(
        "model-too-big-for-pool",
        "llm-model-fits-gpu",
        GOOD.but(pool_types=("ecs.gn6v-c8g1.2xlarge",), llm_annotations=NEEDS_17),
        "llm-chatchat",
        "smaller model",
        passing=GOOD.but(llm_annotations=NEEDS_17),
    ),
    Case(
        "selector-pins-small-gpu",
        "llm-model-fits-gpu",
        GOOD.but(llm_annotations=NEEDS_17, llm_selector=(("chatchat.io/gpu-memory-gib", "16"),)),
        "llm-chatchat",
        "select a larger GPU",
        passing=GOOD.but(
            llm_annotations=NEEDS_17, llm_selector=(("chatchat.io/gpu-memory-gib", "24"),)
        ),
    ),
    Case(
        "no-gpu-known",
        "llm-model-fits-gpu",
        GOOD.but(llm_selector=(("chatchat.io/node-pool", "v100"),)),
        "llm-chatchat",
        "nodeSelector",
    ),
    Case(
        "eci-spec-too-small",
        "llm-model-fits-gpu",
        GOOD.but(llm_eci=True, llm_annotations=HF_MODEL, llm_eci_specs="ecs.gn6v-c8g1.2xlarge"),
        "llm-chatchat",
        "larger spec",
        passing=GOOD.but(
            llm_eci=True, llm_annotations=HF_MODEL, llm_eci_specs="ecs.gn7i-c8g1.2xlarge"
        ),
    ),
    Case(
        "aiacc-on-eci-pod",
        "aiacc-not-on-eci",
        GOOD.but(llm_eci=True, llm_eci_specs="ecs.gn7i-c8g1.2xlarge"),
        "llm-chatchat",
        "instanceType=ecs",
        passing=GOOD.but(
            llm_eci=True, llm_annotations=HF_MODEL, llm_eci_specs="ecs.gn7i-c8g1.2xlarge"
        ),
    ),
    Case(
        "aiacc-on-eci-not-the-chat-pod-naming-it",
        "aiacc-not-on-eci",
        GOOD.but(llm_eci=True, llm_eci_specs="ecs.gn7i-c8g1.2xlarge"),
        "llm-chatchat",
        "instanceType=ecs",
        passing=GOOD.but(chat_eci=True),
    ),
    Case(
        # the chat pod on ECI with a GPU for its embedding model names the aiacc model it calls
        "aiacc-on-eci-not-the-gpu-chat-pod-embedding-on-its-card",
        "aiacc-not-on-eci",
        GOOD.but(chat_eci=True, chat_gpu=True, chat_embedding_device=None),
        "chat-chatchat",
        "instanceType=ecs",
        passing=GOOD.but(chat_eci=True, chat_gpu=True, chat_tolerates_gpu=True),
    ),
    Case(
        "aiacc-in-eci-namespace",
        "aiacc-not-on-eci",
        GOOD.but(namespace_eci=True),
        "llm-chatchat",
        "ECS GPU node pool",
    ),
    Case(
        "aiacc-by-model-name-only",
        "aiacc-not-on-eci",
        GOOD.but(llm_eci=True, llm_annotations=(("chatchat.io/model", "chatglm2-6b-aiacc"),)),
        "llm-chatchat",
        "ECS GPU node pool",
    ),
    Case("pools-over-cap", "gpu-node-cap", GOOD.but(pool_max=9), "gpu-a10=9", "maxSize"),
    Case(
        "configured-cap",
        "gpu-node-cap",
        GOOD,
        "gpu-a10=2",
        "maxGpuNodes",
        passing=GOOD.but(pool_max=1),
        config={"gpu-node-cap": {"maxGpuNodes": 1}},
    ),
]


class TestGpuPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""
