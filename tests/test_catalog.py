"""The catalog matches the seed chart's model table and GPU families (DESIGN.md §3)."""

from pathlib import Path

import pytest

from components.catalog import GPU_FAMILIES, MODEL_ROOT, MODELS, gpu_family_of

# DESIGN.md §3: model name -> directory under /llm-model.
SEED_MODELS = {
    "qwen-7b-chat-aiacc": "qwen-7b-chat-aiacc",
    "qwen-14b-chat-aiacc": "qwen-14b-chat-aiacc",
    "chatglm2-6b-aiacc": "chatglm2-6b-aiacc",
    "baichuan2-7b-chat-aiacc": "baichuan2-7b-chat-aiacc",
    "baichuan2-13b-chat-aiacc": "baichuan2-13b-chat-aiacc",
    "llama-2-7b-hf-aiacc": "llama-2-7b-hf-aiacc",
    "llama-2-13b-hf-aiacc": "llama-2-13b-hf-aiacc",
    "qwen-7b-chat": "Qwen-7B-Chat",
    "qwen-14b-chat": "Qwen-14B-Chat",
    "chatglm2-6b": "chatglm2-6b",
    "chatglm2-6b-32k": "chatglm2-6b-32k",
    "baichuan2-7b-chat": "Baichuan2-7B-Chat",
    "baichuan2-13b-chat": "Baichuan2-13B-Chat",
    "llama-2-7b-hf": "Llama-2-7b-hf",
    "llama-2-13b-hf": "Llama-2-13b-hf",
}


def test_catalog_has_exactly_the_seed_models_and_directories():
    assert {name: m.directory for name, m in MODELS.items()} == SEED_MODELS
    assert MODEL_ROOT == "/llm-model"


@pytest.mark.parametrize("name", sorted(SEED_MODELS))
def test_kind_and_eci_follow_the_aiacc_suffix(name):
    model = MODELS[name]
    assert model.is_aiacc == name.endswith("-aiacc")
    assert model.eci is not model.is_aiacc  # ECI cannot run DeepGPU-LLM
    if model.is_aiacc:
        source = MODELS[model.source_model]
        assert not source.is_aiacc and source.family == model.family
        assert model.converter_model_name


def test_int8_weights_are_half_of_fp16():
    for model in MODELS.values():
        assert model.weights_int8_gib == pytest.approx(model.weights_fp16_gib / 2, abs=0.1)


def test_supported_gpu_families_are_v100_and_a10_only():
    supported = {f: g.gpu_model for f, g in GPU_FAMILIES.items() if g.supported}
    assert supported == {
        "ecs.gn6v": "NVIDIA V100",
        "ecs.gn6e": "NVIDIA V100",
        "ecs.gn7i": "NVIDIA A10",
    }
    assert [GPU_FAMILIES[f].gpu_memory_gib for f in ("ecs.gn6v", "ecs.gn6e", "ecs.gn7i")] == [
        16,
        32,
        24,
    ]


@pytest.mark.parametrize(
    "instance_type",
    [
        "ecs.gn6i-c4g1.xlarge",
        "ecs.vgn6i-m4.xlarge",
        "ecs.vgn7i-vws-m4.xlarge",
        "ecs.sgn7i-vws-m2.xlarge",
        "ecs.gn8is-2x.8xlarge",
    ],
)
def test_t4_vgpu_and_unknown_gpu_types_are_refused(instance_type):
    family = gpu_family_of(instance_type)
    assert family is not None and not family.supported and family.refusal


def test_cpu_types_are_not_gpu_types():
    assert gpu_family_of("ecs.g7.xlarge") is None


@pytest.mark.parametrize(
    ("model", "family", "load8bit", "fits"),
    [
        ("llama-2-13b-hf", "ecs.gn7i", False, False),  # 13B fp16 does not fit a 24 GB A10
        ("llama-2-13b-hf", "ecs.gn7i", True, False),  # vLLM serves open-source models fp16
        ("llama-2-13b-hf-aiacc", "ecs.gn7i", True, True),  # DeepGPU-LLM honours int8
        ("qwen-7b-chat", "ecs.gn6v", True, False),  # open-source qwen forces fp16: 16 GB too small
        ("qwen-7b-chat", "ecs.gn7i", True, True),
        ("qwen-7b-chat-aiacc", "ecs.gn6v", True, True),
        ("qwen-14b-chat", "ecs.gn6e", False, True),
    ],
)
def test_gpu_fit(model, family, load8bit, fits):
    assert MODELS[model].fits(GPU_FAMILIES[family], load8bit) is fits


def test_llm_image_keeps_an_identical_copy_of_the_catalog():
    repo = Path(__file__).resolve().parent.parent
    original = (repo / "components" / "model_catalog.json").read_bytes()
    copies = [
        p
        for p in (repo / "app_images" / "llm").rglob("model_catalog.json")
        if ".venv" not in p.parts
    ]
    assert copies, "app_images/llm must ship a copy of components/model_catalog.json"
    for copy in copies:
        assert copy.read_bytes() == original, f"{copy} differs from components/model_catalog.json"
