"""Real server processes for tests: the launcher, or the app with gated engines, on free ports.

``python tests/server_process.py --gate-dir DIR`` serves the real transformers engine whose
load waits for ``DIR/load`` and whose generations wait for ``DIR/generate`` to exist, so a test
can hold slots busy or the model unloaded for as long as it needs, in a real process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[str]
    gate_dir: Path | None = None

    def open_gate(self, name: str) -> None:
        assert self.gate_dir is not None
        (self.gate_dir / name).touch()


@contextmanager
def server_process(
    env: dict[str, str], port: int, gate_dir: Path | None = None, ready: bool = True
) -> Iterator[ServerProcess]:
    """Start the launcher (or, with ``gate_dir``, the gated app) and stop it afterwards."""
    import httpx

    argv = [sys.executable, "-m", "llm_server.launcher"]
    if gate_dir is not None:
        argv = [sys.executable, str(SCRIPT), "--gate-dir", str(gate_dir)]
    full_env = {**os.environ, "LLM_HOST": "127.0.0.1", "LLM_PORT": str(port), **env}
    proc = subprocess.Popen(
        argv,
        cwd=APP_DIR,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = ServerProcess(f"http://127.0.0.1:{port}", proc, gate_dir)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"server exited: {proc.stderr and proc.stderr.read()}"
            assert time.monotonic() < deadline, "server never came up"
            try:
                status = httpx.get(f"{running.url}/v1/models", timeout=5).status_code
            except httpx.TransportError:
                status = None
            if status == 200 or (status == 503 and not ready):
                break
            time.sleep(0.2)
        yield running
    finally:
        if gate_dir is not None:  # let gated work end so shutdown is not held by it
            for name in ("load", "generate"):
                (gate_dir / name).touch()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_gated(gate_dir: Path) -> None:
    sys.path.insert(0, str(APP_DIR))
    import uvicorn

    from llm_server.api import create_app
    from llm_server.catalog import resolve_model
    from llm_server.engines.base import SamplingOptions
    from llm_server.engines.transformers_engine import TransformersEngine
    from llm_server.settings import Settings

    class GatedEngine(TransformersEngine):
        def load(self) -> None:
            while not (gate_dir / "load").exists():
                time.sleep(0.02)
            super().load()

        async def generate(self, prompt: str, options: SamplingOptions) -> Any:
            while not (gate_dir / "generate").exists():
                await asyncio.sleep(0.02)
            async for chunk in super().generate(prompt, options):
                yield chunk

    settings = Settings()
    entry = resolve_model(settings.llm_model)
    engine = GatedEngine(
        entry.path(settings.llm_model_root), entry.name, entry.context_length, False
    )
    app = create_app(engine, settings, entry.name)
    uvicorn.run(app, host=settings.llm_host, port=settings.llm_port, log_config=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--gate-dir", type=Path, required=True)
    _serve_gated(parser.parse_args().gate_dir)
