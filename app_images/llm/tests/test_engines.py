"""The DeepGPU-LLM adapter against a FAKE vendor module built in this file.

DeepGPU-LLM cannot run here (no GPU, vendor package not public). These tests
check only our adapter's use of the API it was written for; they are no claim that real
DeepGPU-LLM ran. (vLLM runs its own server: see test_vllm_command.py and tests/contract/.)
"""

from __future__ import annotations

import shutil
import sys
import types

import openai
import pytest
from conftest import API_KEY, make_settings, start_server, stop_server

from llm_server.launcher import build_engine, plan_launch

WORDS = ["Hello", " from", " the", " fake", " engine", "."]


# ---- fake DeepGPU-LLM -----------------------------------------------------------------------
class FakeQwenModel:
    """Stands in for deepgpu_llm.qwen_model.qwen_model (fake, built in this test)."""

    loaded: list[dict] = []

    def __init__(self, model_dir, gpu_id, gpu_num, precision) -> None:
        FakeQwenModel.loaded.append(
            {"dir": model_dir, "gpu_id": gpu_id, "gpu_num": gpu_num, "precision": precision}
        )

    def generate(self, prompts, max_generated_length, top_k, top_p, temperature, streaming):
        assert streaming is True and len(prompts) == 1
        for i in range(1, min(max_generated_length, len(WORDS)) + 1):
            yield ["".join(WORDS[:i])]


@pytest.fixture()
def fake_deepgpu(monkeypatch):
    package = types.ModuleType("deepgpu_llm")
    package.__path__ = []
    qwen = types.ModuleType("deepgpu_llm.qwen_model")
    qwen.qwen_model = FakeQwenModel
    monkeypatch.setitem(sys.modules, "deepgpu_llm", package)
    monkeypatch.setitem(sys.modules, "deepgpu_llm.qwen_model", qwen)
    FakeQwenModel.loaded.clear()


@pytest.fixture()
def aiacc_root(model_root, tmp_path):
    shutil.copytree(model_root / "Qwen-7B-Chat", tmp_path / "Qwen-7B-Chat")
    (tmp_path / "qwen-7b-chat-aiacc" / "1-gpu").mkdir(parents=True)  # converted: no tokenizer
    return tmp_path


def test_deepgpu_adapter_serves_the_openai_api(fake_deepgpu, aiacc_root):
    settings = make_settings(aiacc_root, llm_model="qwen-7b-chat-aiacc", llm_engine="auto")
    plan = plan_launch(settings, has_gpu=True)
    assert plan.engine == "deepgpu" and plan.load_8bit is True
    engine = build_engine(plan, settings)
    running = start_server(engine, settings)
    try:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=API_KEY, max_retries=0)
        assert FakeQwenModel.loaded == [
            {
                "dir": str(aiacc_root / "qwen-7b-chat-aiacc"),
                "gpu_id": "0",
                "gpu_num": 1,
                "precision": "int8",
            }
        ]
        stream = client.chat.completions.create(
            model="qwen-7b-chat-aiacc",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            max_tokens=4,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "".join(WORDS[:4])
        assert chunks[-1].usage.completion_tokens == engine.count_tokens(text)
    finally:
        stop_server(running)
