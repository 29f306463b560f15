"""The surface on 8888 that our server and vLLM's own OpenAI server must both keep.

By default it starts OUR server (the real launcher, a subprocess) on a tiny model built here.
To run it against any other server, vLLM's included, point it there:

    LLM_CONTRACT_BASE_URL=http://127.0.0.1:8000 LLM_CONTRACT_MODEL=qwen-7b-chat \\
    LLM_CONTRACT_API_KEY=<key> LLM_CONTRACT_SERVER=vllm \\
    .venv/bin/python -m pytest -q tests/contract

The server must have been started with that API key (the auth cases need one). Only what both
servers share is pinned: what our server alone does (429 past its queue, refused fields) is in
tests/test_backpressure.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from conftest import API_KEY, MODEL, free_port
from server_process import server_process

# Metric names the chat service's dashboards and the autoscaler read, per server.
METRICS = {
    "ours": {
        "queue_depth": "llm_queue_depth",
        "running": "llm_requests_in_flight",
        "ttft_histogram": "llm_time_to_first_token_seconds_bucket",
        "prompt_tokens": "llm_prompt_tokens_total",
        "completion_tokens": "llm_completion_tokens_total",
    },
    "vllm": {  # vllm 0.33.0, vllm/v1/metrics/loggers.py
        "queue_depth": "vllm:num_requests_waiting",
        "running": "vllm:num_requests_running",
        "ttft_histogram": "vllm:time_to_first_token_seconds_bucket",
        "prompt_tokens": "vllm:prompt_tokens_total",
        "completion_tokens": "vllm:generation_tokens_total",
    },
}


@dataclass
class Target:
    base_url: str
    model: str
    api_key: str
    kind: str

    def client(self, api_key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=api_key or self.api_key, max_retries=0
        )


@pytest.fixture(scope="module")
def target(model_root: Path) -> Iterator[Target]:
    base_url = os.environ.get("LLM_CONTRACT_BASE_URL")
    if base_url:
        yield Target(
            base_url.rstrip("/"),
            os.environ.get("LLM_CONTRACT_MODEL", MODEL),
            os.environ["LLM_CONTRACT_API_KEY"],
            os.environ.get("LLM_CONTRACT_SERVER", "vllm"),
        )
        return
    env = {
        "LLM_MODEL": MODEL,
        "LLM_MODEL_ROOT": str(model_root),
        "LLM_ENGINE": "transformers",
        "LLM_API_KEY": API_KEY,
    }
    with server_process(env, free_port()) as running:
        yield Target(running.url, MODEL, API_KEY, "ours")


MESSAGES = [{"role": "user", "content": "Tell me about Kubernetes."}]
FIXED = {"max_tokens": 6, "temperature": 0, "extra_body": {"ignore_eos": True}}


def test_models_lists_the_catalog_name(target):
    models = target.client().models.list()
    assert [m.id for m in models.data] == [target.model]


def test_chat_completion_has_content_and_usage(target):
    reply = target.client().chat.completions.create(model=target.model, messages=MESSAGES, **FIXED)
    assert reply.object == "chat.completion" and reply.model == target.model
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    usage = reply.usage
    assert usage.completion_tokens == 6 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_ends_with_usage_when_asked(target):
    stream = target.client().chat.completions.create(
        model=target.model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        **FIXED,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "length"
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == 6


def test_completion_non_streamed(target):
    reply = target.client().completions.create(model=target.model, prompt="Hello", **FIXED)
    assert reply.object == "text_completion"
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 6


def error_of(exc: openai.APIStatusError) -> dict:
    error = exc.response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_unknown_model_is_404_in_openai_shape(target):
    with pytest.raises(openai.NotFoundError) as caught:
        target.client().chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert "no-such-model" in error_of(caught.value)["message"]


def test_prompt_past_the_context_is_400_in_openai_shape(target):
    too_long = "Kubernetes schedules pods. " * 5000
    with pytest.raises(openai.BadRequestError) as caught:
        target.client().completions.create(model=target.model, prompt=too_long, max_tokens=4)
    assert "context" in error_of(caught.value)["message"].lower()


def test_wrong_api_key_is_401(target):
    # vLLM 0.33.0 answers {"error": "Unauthorized"}: only the status is shared.
    with pytest.raises(openai.AuthenticationError):
        target.client(api_key="wrong").chat.completions.create(
            model=target.model, messages=MESSAGES
        )


def test_health_needs_no_key(target):
    assert httpx.get(f"{target.base_url}/health").status_code == 200


def test_metrics_expose_the_names_dashboards_read(target):
    target.client().completions.create(model=target.model, prompt="Hello", **FIXED)
    text = httpx.get(f"{target.base_url}/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    missing = set(METRICS[target.kind].values()) - names
    assert not missing, missing
