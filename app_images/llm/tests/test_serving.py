"""Serving discipline: readiness, queue limit, client disconnect, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import (
    API_KEY,
    MODEL,
    free_port,
    make_settings,
    start_server,
    stop_server,
    tiny_engine,
)

from llm_server.engines.transformers_engine import TransformersEngine

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
APP_DIR = Path(__file__).resolve().parents[1]


class GatedLoadEngine(TransformersEngine):
    """The real engine whose load waits until the test opens the gate."""

    gate = threading.Event()

    def load(self) -> None:
        assert self.gate.wait(30)
        super().load()


class GatedGenerateEngine(TransformersEngine):
    """The real engine whose generations wait on a gate, to hold slots busy."""

    open_flag: threading.Event

    async def generate(self, prompt, options):
        while not self.open_flag.is_set():
            await asyncio.sleep(0.01)
        async for chunk in super().generate(prompt, options):
            yield chunk


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def test_models_is_503_until_the_model_is_loaded(model_root):
    GatedLoadEngine.gate.clear()
    running = start_server(
        tiny_engine(model_root, GatedLoadEngine), make_settings(model_root), wait_ready=False
    )
    try:
        early = httpx.get(f"{running.url}/v1/models")
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "model_not_ready"
        assert httpx.get(f"{running.url}/health").status_code == 200  # process is up
        chat = httpx.post(
            f"{running.url}/v1/chat/completions",
            headers=HEADERS,
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert chat.status_code == 503
        GatedLoadEngine.gate.set()
        deadline = time.monotonic() + 30
        while httpx.get(f"{running.url}/v1/models").status_code != 200:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.1)
    finally:
        stop_server(running)


def test_requests_past_the_queue_get_429(model_root):
    engine = tiny_engine(model_root, GatedGenerateEngine)
    engine.open_flag = threading.Event()
    running = start_server(
        engine, make_settings(model_root, llm_max_concurrency=1, llm_max_queue=1)
    )
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 3}

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(base_url=running.url, headers=HEADERS, timeout=30) as http:
            first = asyncio.create_task(http.post("/v1/completions", json=body))
            second = asyncio.create_task(http.post("/v1/completions", json=body))
            while running.state.admission.active < 1 or metric(running.url, "llm_queue_depth") < 1:
                await asyncio.sleep(0.02)
            third = await http.post("/v1/completions", json=body)
            assert third.json()["error"]["type"] == "rate_limit_error"
            engine.open_flag.set()
            done = await asyncio.gather(first, second)
            return [third.status_code] + [r.status_code for r in done]

    try:
        assert asyncio.run(scenario()) == [429, 200, 200]
    finally:
        stop_server(running)


def test_client_disconnect_cancels_the_generation(server):
    body = {
        "model": MODEL,
        "prompt": "Hello",
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    before = metric(server.url, "llm_completion_tokens_total")
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=HEADERS) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    deadline = time.monotonic() + 10
    while metric(server.url, "llm_requests_in_flight") > 0:
        assert time.monotonic() < deadline, "generation kept its slot after the client left"
        time.sleep(0.05)
    time.sleep(0.3)
    generated = metric(server.url, "llm_completion_tokens_total") - before
    assert 0 < generated < 2000
    assert not [t for t in threading.enumerate() if t.name == "generate"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_lets_a_running_stream_finish(model_root):
    port = free_port()
    env = {
        **os.environ,
        "LLM_MODEL": MODEL,
        "LLM_MODEL_ROOT": str(model_root),
        "LLM_ENGINE": "auto",
        "LLM_PORT": str(port),
        "LLM_HOST": "127.0.0.1",
        "LLM_SHUTDOWN_GRACE_S": "20",
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_server.launcher"],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "launcher never became ready"
            try:
                if httpx.get(f"{url}/v1/models").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {
            "model": MODEL,
            "prompt": "Hello",
            "max_tokens": 400,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            next(lines)
            proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        assert '"completion_tokens": 400' in rest[-2]
        # uvicorn re-raises the captured SIGTERM once shutdown is complete
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_non_streamed_request_is_cancelled_when_the_client_gives_up(server):
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 2000, "ignore_eos": True}
    before = metric(server.url, "llm_completion_tokens_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/completions", json=body, headers=HEADERS, timeout=1.0)
    deadline = time.monotonic() + 10
    while metric(server.url, "llm_requests_in_flight") > 0:
        assert time.monotonic() < deadline, "generation kept its slot after the client left"
        time.sleep(0.05)
    time.sleep(0.3)
    assert 0 < metric(server.url, "llm_completion_tokens_total") - before < 2000
    assert not [t for t in threading.enumerate() if t.name == "generate"]


class FailingLoadEngine(TransformersEngine):
    def load(self) -> None:
        raise OSError("weights file is truncated")


def test_load_failure_turns_health_red_with_the_reason(model_root):
    running = start_server(
        tiny_engine(model_root, FailingLoadEngine), make_settings(model_root), wait_ready=False
    )
    try:
        deadline = time.monotonic() + 10
        while (health := httpx.get(f"{running.url}/health")).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.status_code == 503
        assert "weights file is truncated" in health.json()["load_error"]
        models = httpx.get(f"{running.url}/v1/models")
        assert models.status_code == 503
        assert "weights file is truncated" in models.json()["error"]["message"]
    finally:
        stop_server(running)
