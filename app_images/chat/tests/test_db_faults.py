"""PostgreSQL stopped and restarted under a running API (a real pgserver): clean 503s, never 500.

While the database is down: knowledge-base calls that need it answer 503 with Retry-After in the
usual envelope (OpenAI's shape on /v1), faiss knowledge bases keep answering, liveness stays
200 and readiness turns 503. After the restart the same calls answer again.
"""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from chat_server.api import create_app
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from tests.conftest import AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread

OTTERS = b"Sea otters hold hands while they sleep so that they do not drift apart."


@pytest.fixture()
def own_pg(tmp_path_factory):
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    import pgserver

    pgdata = tmp_path_factory.mktemp("pg")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    yield pgdata, server
    pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "database is unavailable" in r.text


def test_database_stop_and_restart(own_pg, tmp_path, embedder, stub_llm, model_dir):
    import pgserver

    pgdata, server = own_pg
    db = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    conninfo = server.get_uri(db)
    settings = make_settings(tmp_path / "kb", stub_llm.url, model_dir, default_vs_type="adb")
    service = KnowledgeService(embedder, settings.kb_root, conninfo, "adb")
    llm = LLMClient(settings.llm_base_url, "k", "stub-model", 10, 1)
    adb_kb, faiss_kb = new_kb_name(), new_kb_name()
    try:
        with ServerThread(create_app(settings, service, llm)) as api:
            http = httpx.Client(base_url=api.url, headers=AUTH, timeout=90)
            for name, vs in ((adb_kb, "adb"), (faiss_kb, "faiss")):
                body = {"knowledge_base_name": name, "vector_store_type": vs}
                assert http.post("/knowledge_base/create_knowledge_base", json=body).is_success
                r = http.post(
                    "/knowledge_base/upload_docs",
                    data={"knowledge_base_name": name},
                    files=[("files", ("otters.txt", OTTERS))],
                )
                assert r.status_code == 200, r.text

            def search(name: str) -> httpx.Response:
                body = {"knowledge_base_name": name, "query": "sleeping otters"}
                return http.post("/knowledge_base/search_docs", json=body)

            assert http.get("/ready").json()["database"] == "ok"

            server.cleanup()  # pg_ctl stop: the pool's connections are dead now
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(conninfo, connect_timeout=2).close()

            assert_unavailable(search(adb_kb))
            assert search(faiss_kb).json()[0]["metadata"]["source"] == "otters.txt"
            ready = http.get("/ready")
            assert ready.status_code == 503 and ready.json()["database"] == "unavailable"
            assert "Retry-After" in ready.headers
            assert http.get("/health").status_code == 200  # alive: no restart loop
            v1 = http.post(
                "/v1/chat/completions",
                json={"model": f"kb:{adb_kb}", "messages": [{"role": "user", "content": "q"}]},
            )
            assert v1.status_code == 503 and v1.json()["error"]["code"] == 503

            restarted = pgserver.get_server(pgdata, cleanup_mode="stop")
            assert restarted.get_uri(db) == conninfo
            statuses = []
            for _ in range(60):  # bounded: the pool reconnects with a backoff
                r = search(adb_kb)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    break
                assert_unavailable(r)
                time.sleep(1)
            assert statuses[-1] == 200, statuses
            assert r.json()[0]["metadata"]["source"] == "otters.txt"
            assert http.get("/ready").status_code == 200
    finally:
        service.close()
