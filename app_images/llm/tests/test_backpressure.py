"""Backpressure clients can use, against real server processes (subprocesses, real sockets).

Retry-After on 429 and 503; a queued request whose client hangs up leaves the queue at once;
tokenising huge prompts does not stall /health or /metrics; fields we cannot honour get a 400
naming them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from conftest import API_KEY, MODEL, free_port
from server_process import ServerProcess, server_process

from llm_server.tiny_model import CORPUS

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
STREAM_BODY = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "stream": True}


def env_for(model_root: Path, **extra: str) -> dict[str, str]:
    return {
        "LLM_MODEL": MODEL,
        "LLM_MODEL_ROOT": str(model_root),
        "LLM_ENGINE": "transformers",
        "LLM_API_KEY": API_KEY,
        "LLM_RETRY_AFTER_S": "3",
        **extra,
    }


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def wait_for_metric(url: str, name: str, value: float, what: str) -> None:
    # A liveness bound (the event is the gauge change), not a latency target.
    deadline = time.monotonic() + 15
    while metric(url, name) != value:
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def raw_request(url: str, body: dict) -> socket.socket:
    """Send a request on a bare socket and leave it unread (a client we can hang up on)."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


@pytest.fixture(scope="module")
def launcher(model_root: Path) -> Iterator[ServerProcess]:
    with server_process(env_for(model_root), free_port()) as running:
        yield running


@pytest.fixture()
def gated(model_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    env = env_for(model_root, LLM_MAX_CONCURRENCY="1", LLM_MAX_QUEUE="1")
    with server_process(env, free_port(), gate_dir=tmp_path, ready=False) as running:
        yield running


def test_not_loaded_503_carries_retry_after(gated):
    response = httpx.post(f"{gated.url}/v1/completions", json=STREAM_BODY, headers=HEADERS)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "model_not_ready"


def test_queued_client_that_hangs_up_leaves_the_queue_at_once(gated):
    gated.open_gate("load")
    wait_for_metric(gated.url, "llm_model_loaded", 1, "model never loaded")
    with httpx.stream(
        "POST", f"{gated.url}/v1/completions", json=STREAM_BODY, headers=HEADERS, timeout=30
    ) as running:
        assert running.status_code == 200  # holds the one slot: its generation is gated
        wait_for_metric(gated.url, "llm_requests_in_flight", 1, "first request not running")
        queued = raw_request(gated.url, STREAM_BODY)
        wait_for_metric(gated.url, "llm_queue_depth", 1, "second request not queued")

        full = httpx.post(f"{gated.url}/v1/completions", json=STREAM_BODY, headers=HEADERS)
        assert full.status_code == 429
        assert full.headers["retry-after"] == "3"
        assert full.json()["error"]["code"] == "queue_full"

        queued.close()  # the client goes away while waiting for a slot
        wait_for_metric(gated.url, "llm_queue_depth", 0, "hung-up request kept its queue slot")
        # The slot holder is still gated, so nothing else could have emptied the queue.
        assert metric(gated.url, "llm_requests_in_flight") == 1
        again = raw_request(gated.url, STREAM_BODY)
        wait_for_metric(gated.url, "llm_queue_depth", 1, "freed queue place not reusable")
        again.close()
        wait_for_metric(gated.url, "llm_queue_depth", 0, "second hang-up kept its slot")

        gated.open_gate("generate")
        lines = [line for line in running.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    wait_for_metric(gated.url, "llm_requests_in_flight", 0, "slot not released")
    assert 'status="499"' in httpx.get(f"{gated.url}/metrics").text


def test_openai_client_waits_the_retry_after_of_a_503(gated):
    client = openai.OpenAI(base_url=f"{gated.url}/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.completions.create(model=MODEL, prompt="Hello", max_tokens=2)
    assert caught.value.response.headers["retry-after"] == "3"


def test_health_and_metrics_answer_while_huge_prompts_are_tokenised(launcher):
    # Three prompts of ~1.5 MB: each takes on the order of a second to tokenise here, and is
    # then refused for its length. With tokenising on the event loop, no probe would be
    # answered until the first of them finished; off the loop, probes keep being answered.
    huge = " ".join(CORPUS) * 4000
    events: list[str] = []

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=launcher.url, headers=HEADERS, timeout=120) as http:

            async def big() -> None:
                response = await http.post(
                    "/v1/completions", json={"model": MODEL, "prompt": huge, "max_tokens": 4}
                )
                assert response.json()["error"]["code"] == "context_length_exceeded"
                events.append("huge_done")

            async def probe(path: str) -> float:
                started = time.monotonic()
                assert (await http.get(path)).status_code == 200
                events.append("probe")
                return time.monotonic() - started

            tasks = [asyncio.create_task(big()) for _ in range(3)]
            latencies = []
            while not all(t.done() for t in tasks):
                latencies.append(await probe("/health"))
                latencies.append(await probe("/metrics"))
                await asyncio.sleep(0.05)
            await asyncio.gather(*tasks)
            # Liveness, not a benchmark: a blocked loop stalls probes for a whole tokenisation.
            assert max(latencies) < 1.0, latencies

    asyncio.run(scenario())
    first_done = events.index("huge_done")
    assert events[:first_done].count("probe") >= 4, events


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("logprobs", True),
        ("top_logprobs", 3),
        ("n", 2),
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("response_format", {"type": "json_object"}),
        ("seed", 7),
        ("presence_penalty", 0.5),
    ],
)
def test_fields_we_cannot_honour_get_a_400_naming_them(launcher, field, value):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], field: value}
    response = httpx.post(f"{launcher.url}/v1/chat/completions", json=body, headers=HEADERS)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (field, "unsupported_parameter")
    assert error["message"].startswith(f"{field}=")


def test_neutral_values_of_refused_fields_are_accepted(launcher):
    client = openai.OpenAI(base_url=f"{launcher.url}/v1", api_key=API_KEY)
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3,
        n=1,
        logprobs=False,
        presence_penalty=0,
        user="someone",
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
