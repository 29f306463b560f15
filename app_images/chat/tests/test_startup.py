"""The production path: settings from the chart's env vars, service built at start-up."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest
import torch
from psycopg.conninfo import conninfo_to_dict

from chat_server.api import create_app
from chat_server.settings import Settings
from tests.conftest import API_KEY, AUTH, minilm_dir, new_kb_name
from tests.stub_llm import ServerThread


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
def test_service_starts_from_chart_env_vars(
    vs_type, monkeypatch, tmp_path, model_dir, stub_llm, request
):
    monkeypatch.setenv("MODEL_ROOT", str(model_dir.parent))
    monkeypatch.setenv("EMBEDDING_MODEL", model_dir.name)
    monkeypatch.setenv("KB_ROOT", str(tmp_path / "kb"))
    monkeypatch.setenv("LLM_HOST", stub_llm.url)
    monkeypatch.setenv("LLM_MODEL", "qwen-7b-chat")
    monkeypatch.setenv("DEFAULT_VS_TYPE", vs_type)
    monkeypatch.setenv("CHAT_API_KEY", API_KEY)
    if vs_type == "adb":
        params = conninfo_to_dict(request.getfixturevalue("pg_conninfo"))
        monkeypatch.setenv("PG_HOST", params["host"])
        monkeypatch.setenv("PG_PORT", str(params.get("port", 5432)))
        monkeypatch.setenv("PG_DATABASE", params["dbname"])
        monkeypatch.setenv("PG_USER", params["user"])
        monkeypatch.setenv("PG_PASSWORD", params.get("password", ""))
    settings = Settings()
    assert settings.embedding_model_path == model_dir
    with ServerThread(create_app()) as api:
        health = httpx.get(f"{api.url}/health").json()
        assert health == {
            "status": "ok",
            "knowledge_base": "ok",
            "embedding_model": "model",
            "llm": "ok",
        }
        name = new_kb_name()
        r = httpx.post(
            f"{api.url}/knowledge_base/create_knowledge_base",
            json={"knowledge_base_name": name},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        r = httpx.post(
            f"{api.url}/knowledge_base/upload_docs",
            data={"knowledge_base_name": name},
            files=[("files", ("a.txt", b"Otters hold hands while they sleep."))],
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        docs = httpx.post(
            f"{api.url}/knowledge_base/search_docs",
            json={"knowledge_base_name": name, "query": "sleeping otters"},
            headers=AUTH,
        ).json()
        assert docs[0]["metadata"]["source"] == "a.txt"
    if vs_type == "faiss":
        assert (tmp_path / "kb" / name / "vector_store" / "index.faiss").exists()
        assert (tmp_path / "kb" / "info.sqlite").exists()


def test_missing_embedding_model_fails_start_with_its_path(monkeypatch, tmp_path):
    from chat_server.kb.embeddings import Embedder, EmbeddingModelMissing

    with pytest.raises(EmbeddingModelMissing, match=str(tmp_path / "nope")):
        Embedder(tmp_path / "nope")


@pytest.mark.parametrize(
    ("setting", "cuda", "device"),
    [("auto", False, "cpu"), ("auto", True, "cuda"), ("cpu", True, "cpu"), ("cuda", True, "cuda")],
)
def test_embedding_device_choice(setting, cuda, device):
    from chat_server.kb.embeddings import resolve_device

    assert resolve_device(setting, cuda) == device


def test_embedding_device_refuses_cuda_without_a_gpu_and_unknown_names():
    from chat_server.kb.embeddings import EmbeddingDeviceUnavailable, resolve_device

    with pytest.raises(EmbeddingDeviceUnavailable, match=r"EMBEDDING_DEVICE=cuda.*no CUDA device"):
        resolve_device("cuda", False)
    with pytest.raises(ValueError, match="auto, cpu or cuda, not 'gpu'"):
        resolve_device("gpu", True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU: auto picks it")
def test_embedder_auto_runs_on_cpu_without_a_gpu_and_logs_it(caplog):
    from chat_server.kb.embeddings import Embedder

    with caplog.at_level(logging.INFO, logger="chat_server.kb.embeddings"):
        embedder = Embedder(minilm_dir())
    assert (embedder.device, embedder.dtype) == ("cpu", "float32")
    assert str(next(embedder.model.parameters()).device) == "cpu"
    loaded = [r for r in caplog.records if r.getMessage() == "embedding model loaded"]
    assert [(r.device, r.dtype) for r in loaded] == [("cpu", "float32")]
    vectors = embedder.encode(["知识库", "knowledge base"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, embedder.dim)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_service_with_embedding_device_cuda_fails_start_without_a_gpu(monkeypatch, tmp_path):
    from chat_server.api.app import build_service
    from chat_server.kb.embeddings import EmbeddingDeviceUnavailable

    monkeypatch.setenv("EMBEDDING_DEVICE", "cuda")
    settings = Settings(
        embedding_model=str(minilm_dir()), kb_root=tmp_path / "kb", chat_api_key="k"
    )
    assert settings.embedding_device == "cuda"
    with pytest.raises(EmbeddingDeviceUnavailable, match="give the pod an nvidia.com/gpu"):
        build_service(settings)


def test_embedding_device_setting_rejects_unknown_values(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("EMBEDDING_DEVICE", "gpu")
    with pytest.raises(ValidationError, match="embedding_device"):
        Settings(chat_api_key="k")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device and CUDA torch")
def test_embedder_on_cuda_is_fp16_and_agrees_with_cpu():
    from chat_server.kb.embeddings import Embedder

    gpu, cpu = Embedder(minilm_dir(), device="cuda"), Embedder(minilm_dir(), device="cpu")
    assert (gpu.device, gpu.dtype) == ("cuda", "float16")
    texts = ["知识库问答", "GPU embedding in half precision"]
    a, b = gpu.encode(texts), cpu.encode(texts)
    assert a.dtype == np.float32
    assert float(np.min(np.sum(a * b, axis=1))) > 0.99
