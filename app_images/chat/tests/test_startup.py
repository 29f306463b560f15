"""The production path: settings from the chart's env vars, service built at start-up."""

from __future__ import annotations

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from chat_server.api import create_app
from chat_server.settings import Settings
from tests.conftest import API_KEY, AUTH, new_kb_name
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
