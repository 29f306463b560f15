"""vLLM and DeepGPU-LLM adapters against FAKE vendor modules built in this file.

Neither vLLM nor DeepGPU-LLM can run here (no GPU, vendor package not public). These tests
check only our adapters' use of the APIs they were written for; they are no claim that real
vLLM or DeepGPU-LLM ran.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import types
from types import SimpleNamespace

import openai
import pytest
from conftest import API_KEY, make_settings, start_server, stop_server

from llm_server.engines.base import EngineUnavailableError, SamplingOptions
from llm_server.launcher import build_engine, plan_launch
from llm_server.settings import Settings

WORDS = ["Hello", " from", " the", " fake", " engine", "."]


# ---- fake vLLM -------------------------------------------------------------------------------
class FakeAsyncLLMEngine:
    instances: list[FakeAsyncLLMEngine] = []

    def __init__(self, args) -> None:
        self.args = args
        self.aborted: list[str] = []
        FakeAsyncLLMEngine.instances.append(self)

    @classmethod
    def from_engine_args(cls, args):
        return cls(args)

    async def generate(self, prompt, params, request_id):
        words = WORDS[: params.max_tokens]
        for i in range(1, len(words) + 1):
            await asyncio.sleep(0.01)
            done = i == len(words)
            yield SimpleNamespace(
                finished=done,
                outputs=[
                    SimpleNamespace(
                        text="".join(words[:i]),
                        token_ids=list(range(i)),
                        finish_reason="length" if done else None,
                    )
                ],
            )

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


@pytest.fixture()
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.AsyncEngineArgs = lambda **kw: SimpleNamespace(**kw)
    module.AsyncLLMEngine = FakeAsyncLLMEngine
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeAsyncLLMEngine.instances.clear()
    return module


def vllm_engine(model_root):
    settings = Settings(llm_model="qwen-7b-chat", llm_model_root=model_root)
    plan = plan_launch(settings, has_gpu=True)
    assert plan.engine == "vllm"
    return build_engine(plan, settings)


def test_vllm_adapter_streams_deltas_of_cumulative_outputs(fake_vllm, model_root):
    engine = vllm_engine(model_root)
    engine.load()
    assert FakeAsyncLLMEngine.instances[0].args.model == str(model_root / "Qwen-7B-Chat")

    async def collect():
        return [c async for c in engine.generate("hi", SamplingOptions(max_tokens=6))]

    chunks = asyncio.run(collect())
    assert "".join(c.text for c in chunks) == "".join(WORDS)
    assert sum(c.tokens for c in chunks) == 6
    assert chunks[-1].finish_reason == "length"
    assert FakeAsyncLLMEngine.instances[0].aborted == []


def test_vllm_adapter_aborts_when_the_consumer_stops_early(fake_vllm, model_root):
    engine = vllm_engine(model_root)
    engine.load()

    async def first_then_close():
        stream = engine.generate("hi", SamplingOptions(max_tokens=6))
        first = await anext(stream)
        await stream.aclose()
        return first

    assert asyncio.run(first_then_close()).text == "Hello"
    assert len(FakeAsyncLLMEngine.instances[0].aborted) == 1


def test_vllm_engine_without_vllm_says_which_image_to_use(monkeypatch, model_root):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(EngineUnavailableError, match="vllm package is not installed"):
        vllm_engine(model_root).load()


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
