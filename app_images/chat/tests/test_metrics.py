"""The API's `/metrics` (what the llm's KEDA trigger and the dashboards read), against the API
started as its image starts it (`python -m chat_server.api`, a process of its own).

The llm starts down, as a scaled-to-zero llm is (nothing listens on its port): each request that
needs it is a 503 with Retry-After and one more `chat_llm_unavailable_total` for its route, the
counter the autoscaler wakes the llm on. Then the llm comes up on that port and the same
request is answered without counting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chatchat_client import ChatchatClient
from tests.conftest import API_KEY, AUTH, new_kb_name
from tests.stub_llm import free_port

CHAT = Path(__file__).parent.parent


def wait_until_up(url: str, proc: subprocess.Popen, path: str) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{url} did not start"
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def llm_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api(llm_port, model_dir, tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LLM_HOST": "127.0.0.1",
        "LLM_PORT": str(llm_port),  # nothing listens there yet: the llm is at zero
        "LLM_MODEL": "stub-model",
        "EMBEDDING_MODEL": str(model_dir),
        "KB_ROOT": str(tmp_path_factory.mktemp("kb")),
        "CHAT_API_KEY": API_KEY,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
    }
    proc = subprocess.Popen([sys.executable, "-m", "chat_server.api"], cwd=CHAT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, "/openapi.json")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def scrape(api: str) -> dict[tuple[str, frozenset], float]:
    """(series name, labels) -> value, parsed with prometheus_client's own parser."""
    reply = httpx.get(f"{api}/metrics", timeout=10)  # no key: the scraper has none
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def unavailable(samples: dict, route: str) -> float:
    return value(samples, "chat_llm_unavailable_total", route=route)


def test_every_route_starts_at_zero_so_the_first_refusal_is_an_increase(api):
    samples = scrape(api)
    for route in ("/chat/chat", "/chat/knowledge_base_chat", "/v1/chat/completions"):
        assert ("chat_llm_unavailable_total", frozenset({("route", route)})) in samples
        assert unavailable(samples, route) == 0


def test_ingestion_stages_are_listed_before_any_ingestion(api):
    samples = scrape(api)  # a rate over a series born at its first sample reads as nothing
    for stage in ("parse", "embed", "write"):
        series = ("chat_ingest_stage_seconds_count", frozenset({("stage", stage)}))
        assert samples.get(series) == 0, stage


def test_a_request_while_the_llm_is_down_counts_and_a_probe_does_not(api, llm_port):
    before = scrape(api)
    health = httpx.get(f"{api}/health", timeout=10)
    assert health.status_code == 200 and health.json()["llm"] == "unreachable"

    for stream in (False, True):
        reply = httpx.post(
            f"{api}/chat/chat",
            json={"query": "hello", "stream": stream},
            headers=AUTH,
            timeout=30,
        )
        assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
        assert "unreachable" in reply.json()["msg"]
    openai_face = httpx.post(
        f"{api}/v1/chat/completions",
        json={"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
        timeout=30,
    )
    assert openai_face.status_code == 503 and openai_face.json()["error"]["code"] == 503
    models = httpx.post(f"{api}/llm_model/list_running_models", json={}, headers=AUTH)
    assert models.status_code == 503 and models.json()["data"] == {}

    after = scrape(api)
    assert unavailable(after, "/chat/chat") - unavailable(before, "/chat/chat") == 2
    assert (
        unavailable(after, "/v1/chat/completions")
        == unavailable(before, "/v1/chat/completions") + 1
    )
    assert unavailable(after, "/llm_model/list_running_models") == 1
    assert unavailable(after, "/health") == 0  # probes never wake the llm
    refused = value(after, "chat_requests_total", route="/chat/chat", method="POST", status="503")
    assert refused == 2
    assert value(after, "chat_request_duration_seconds_count", route="/chat/chat", method="POST")

    # the llm comes up (KEDA woke it): the same request is answered and counts no more
    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.stub_llm", "--port", str(llm_port)], cwd=CHAT
    )
    try:
        wait_until_up(f"http://127.0.0.1:{llm_port}", stub, "/v1/models")
        answered = httpx.post(
            f"{api}/chat/chat", json={"query": "hello", "stream": False}, headers=AUTH, timeout=30
        )
        assert answered.status_code == 200 and "STUB ANSWER to: hello" in answered.text
        woke = scrape(api)
        assert unavailable(woke, "/chat/chat") == unavailable(after, "/chat/chat")
        ok = value(woke, "chat_requests_total", route="/chat/chat", method="POST", status="200")
        assert ok == 1
    finally:
        stub.kill()
        stub.wait(timeout=10)


def test_routes_are_counted_by_template_not_by_path(api):
    for _ in range(2):
        assert httpx.get(f"{api}/no/such/path/{time.monotonic()}", headers=AUTH).status_code
    samples = scrape(api)
    assert value(samples, "chat_requests_total", route="unmatched", method="GET", status="404")
    assert not [labels for name, labels in samples if ("route", "/no/such") in labels]


def test_ingestion_progress(api):
    client = ChatchatClient(api, AUTH)
    before = scrape(api)
    name = new_kb_name()
    client.create_knowledge_base(name, "faiss", "m")
    text = "Sea otters hold hands while they sleep. " * 40
    reply = client.upload_kb_docs([("otter.txt", text.encode()), ("b.txt", b"Badgers dig.")], name)
    assert reply.status_code == 200, reply.text
    chunks = len(client.search_kb_docs(name, "", file_name="otter.txt"))
    chunks += len(client.search_kb_docs(name, "", file_name="b.txt"))
    client.upload_kb_docs([("empty.txt", b"   ")], name)  # no text: the ingestion fails
    after = scrape(api)

    def grew(series: str, **labels: str) -> float:
        return value(after, series, **labels) - value(before, series, **labels)

    assert grew("chat_ingested_files_total") == 2
    assert grew("chat_ingested_chunks_total") == chunks > 2
    assert grew("chat_ingest_failures_total") == 1
    assert value(after, "chat_ingestions_running") == 0
    # where the time went: every file parsed (the one without text too), the chunks embedded
    # and written; the failed upload wrote nothing
    assert grew("chat_ingest_stage_seconds_count", stage="parse") == 3
    for stage in ("parse", "embed", "write"):
        assert grew("chat_ingest_stage_seconds_sum", stage=stage) > 0, stage
    assert grew("chat_ingest_stage_seconds_count", stage="embed") >= 1
    assert grew("chat_ingest_stage_seconds_count", stage="write") >= 1
