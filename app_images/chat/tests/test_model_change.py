"""A change of EMBEDDING_MODEL: a KB keeps the model its vectors were made with, refuses to mix
or compare vectors of two models (409 naming the rebuild), and a rebuild moves it to the new
model. The "new model" is the same MiniLM under another directory name: the service names a
model by its directory (as 0.2 did), which is all the record compares."""

from __future__ import annotations

import pytest

from chat_server.api import create_app
from chat_server.kb.embeddings import Embedder
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from tests.chatchat_client import ChatchatClient
from tests.conftest import AUTH, new_kb_name
from tests.stub_llm import ServerThread

PANDA = "Giant pandas live in the mountains of Sichuan. They eat bamboo every day."
ROCKET = "The Saturn V rocket carried the Apollo astronauts to the Moon."


@pytest.fixture(scope="module")
def other_embedder(tmp_path_factory, model_dir) -> Embedder:
    renamed = tmp_path_factory.mktemp("models") / "other-minilm"
    renamed.symlink_to(model_dir, target_is_directory=True)
    return Embedder(renamed, device="cpu")


def restart_with(stack, embedder: Embedder) -> tuple[KnowledgeService, ServerThread]:
    stack.service.close()
    service = KnowledgeService(embedder, stack.settings.kb_root, stack.conninfo, stack.vs_type)
    llm = LLMClient(stack.settings.llm_base_url, "k", "stub-model", 10, 1)
    return service, ServerThread(create_app(stack.settings, service, llm))


def test_a_kb_of_the_old_model_is_refused_until_rebuilt(stack, other_embedder):
    client = ChatchatClient(stack.url, AUTH)
    kb, empty = new_kb_name(), new_kb_name()
    for name in (kb, empty):
        assert client.create_knowledge_base(name, stack.vs_type, "x")["code"] == 200
    r = client.upload_kb_docs([("panda.txt", PANDA.encode())], kb)
    assert r.status_code == 200 and r.json()["data"]["embedded_files"] == ["panda.txt"]
    old = stack.service.embedder.name

    service, thread = restart_with(stack, other_embedder)
    with thread as server:
        again = ChatchatClient(server.url, AUTH)
        # What needs no vectors still works: the files are there to list and to rebuild from.
        assert again.list_kb_docs(kb) == ["panda.txt"]
        search = again.http.post(
            "/knowledge_base/search_docs", json={"knowledge_base_name": kb, "query": "bamboo"}
        )
        upload = again.upload_kb_docs([("rocket.txt", ROCKET.encode())], kb)
        for refused in (search, upload):
            assert refused.status_code == 409, refused.text
            msg = refused.json()["msg"]
            assert old in msg and "other-minilm" in msg and "recreate_vector_store" in msg
        assert again.list_kb_docs(kb) == ["panda.txt"]  # the refused upload stored nothing

        # A KB without chunks has no vectors to mix: it takes the new model at once.
        r = again.upload_kb_docs([("rocket.txt", ROCKET.encode())], empty)
        assert r.status_code == 200, r.text
        assert service.get_kb(empty)[0].embed_model == "other-minilm"

        events = again.recreate_vector_store(kb)
        assert [e["code"] for e in events] == [200] and events[-1]["doc"] == "panda.txt"
        assert service.get_kb(kb)[0].embed_model == "other-minilm"
        hits = again.search_kb_docs(kb, "What do pandas eat?", top_k=1)
        assert hits and hits[0]["metadata"]["source"] == "panda.txt"
        r = again.upload_kb_docs([("rocket.txt", ROCKET.encode())], kb)
        assert r.status_code == 200 and r.json()["data"]["embedded_files"] == ["rocket.txt"]
    stack.service = service
