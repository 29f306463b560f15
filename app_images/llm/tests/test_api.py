"""The official openai client against the real server serving the tiny model on CPU."""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import API_KEY, MODEL


@pytest.fixture()
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_chat_completion_returns_text_and_usage(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
        extra_body={"ignore_eos": True},
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


def test_chat_stream_sends_deltas_then_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text
    assert reasons[-1] == "length" and all(r is None for r in reasons[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_stream_text_equals_non_stream_text_with_greedy_decoding(client):
    kwargs = dict(
        model=MODEL,
        prompt="The quick brown fox",
        max_tokens=12,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    whole = client.completions.create(**kwargs).choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs))
    assert streamed == whole


def test_completion_endpoint_counts_tokens(client):
    reply = client.completions.create(
        model=MODEL, prompt="Kubernetes schedules", max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert reply.object == "text_completion"
    assert reply.usage.completion_tokens == 4


def test_stop_string_cuts_the_output(client):
    kwargs = dict(
        model=MODEL, prompt="Hello", max_tokens=30, temperature=0, extra_body={"ignore_eos": True}
    )
    full = client.completions.create(**kwargs).choices[0].text
    stop = full[5:8]
    assert stop and stop.strip()
    cut = client.completions.create(stop=[stop], **kwargs).choices[0]
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"


def test_unknown_model_is_404_in_openai_shape(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found"
    assert "gpt-4" in err.value.body["message"]


def test_empty_messages_is_400_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[])
    assert err.value.body["param"] == "messages"
    assert "at least one message" in err.value.body["message"]
    assert err.value.body["type"] == "invalid_request_error"


def test_max_tokens_beyond_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=100_000
        )
    assert err.value.body["code"] == "context_length_exceeded"
    assert "maximum context length is 2048" in err.value.body["message"]


def test_bad_api_key_is_401(server):
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "invalid_api_key"


def test_missing_api_key_is_401(server):
    response = httpx.post(f"{server.url}/v1/completions", json={"model": MODEL, "prompt": "x"})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_health_and_metrics(server, client):
    client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
    assert httpx.get(f"{server.url}/health").json()["model_loaded"] is True
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'llm_requests_total{endpoint="/v1/completions",status="200"}' in metrics
    assert "llm_time_to_first_token_seconds_count" in metrics
    assert "llm_queue_depth 0.0" in metrics
    assert "llm_completion_tokens_total" in metrics
