"""Fixtures: a tiny random-weight Qwen2 model built here, and real servers on free ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from llm_server.api import create_app
from llm_server.engines.base import Engine
from llm_server.engines.transformers_engine import TransformersEngine
from llm_server.settings import Settings
from llm_server.tiny_model import build_tiny_model

MODEL = "qwen-7b-chat"  # an open-source catalog entry; its directory holds the tiny model
API_KEY = "test-key"


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("llm-model")
    build_tiny_model(root / "Qwen-7B-Chat")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    app: object
    server: uvicorn.Server

    @property
    def state(self):
        return self.app.state.server


def make_settings(root: Path, **overrides) -> Settings:
    values = {
        "llm_model": MODEL,
        "llm_model_root": root,
        "llm_engine": "transformers",
        "llm_api_key": API_KEY,
        "llm_shutdown_grace_s": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


def tiny_engine(root: Path, cls: type[Engine] = TransformersEngine) -> Engine:
    return cls(root / "Qwen-7B-Chat", MODEL, 8192, False)


def start_server(engine: Engine, settings: Settings, wait_ready: bool = True) -> RunningServer:
    app = create_app(engine, settings, settings.llm_model)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=5
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/v1/models", timeout=2).status_code
        except httpx.TransportError:
            status = None
        if status == 200 or (status == 503 and not wait_ready):
            return RunningServer(url, app, server)
        time.sleep(0.1)
    raise RuntimeError("test server did not come up")


def stop_server(running: RunningServer) -> None:
    running.server.should_exit = True


@pytest.fixture(scope="session")
def server(model_root: Path) -> Iterator[RunningServer]:
    running = start_server(tiny_engine(model_root), make_settings(model_root))
    yield running
    stop_server(running)
