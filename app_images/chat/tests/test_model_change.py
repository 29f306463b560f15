"""A change of EMBEDDING_MODEL: a KB keeps the model its vectors were made with, refuses to mix
or compare vectors of two models (409 naming the rebuild), and a rebuild moves it to the new
model. The "new model" is the same MiniLM under another directory name: the service names a
model by its directory (as 0.2 did), which is all the record compares."""

from __future__ import annotations

import pytest

from chat_server.api import create_app
from chat_server.kb.embeddings import Embedder
from chat_server.kb.service import EmbeddedFile, KnowledgeBaseError, KnowledgeService
from chat_server.llm_client import LLMClient
from chat_server.stores.base import FileRecord
from chat_server.stores.imports import FileOutcome
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


# -- a model of another dimension ---------------------------------------------------------------
@pytest.fixture(scope="module")
def dim64_embedder(tmp_path_factory, model_dir) -> Embedder:
    """MiniLM followed by a fixed random projection to 64 dimensions (a random projection
    keeps distances roughly: a real model of another dimension, as far as the stores go)."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    path = tmp_path_factory.mktemp("models") / "minilm-dim64"
    torch.manual_seed(0)
    base = SentenceTransformer(str(model_dir), device="cpu")
    dense = models.Dense(384, 64, bias=False, activation_function=torch.nn.Identity())
    SentenceTransformer(modules=[base[0], base[1], dense, models.Normalize()]).save(str(path))
    embedder = Embedder(path, device="cpu")
    assert embedder.dim == 64
    return embedder


def test_a_model_of_another_dimension_takes_over_a_kb_by_a_rebuild(stack, dim64_embedder):
    client = ChatchatClient(stack.url, AUTH)
    kb = new_kb_name()
    assert client.create_knowledge_base(kb, stack.vs_type, "x")["code"] == 200
    files = [("panda.txt", PANDA.encode()), ("rocket.txt", ROCKET.encode())]
    assert client.upload_kb_docs(files, kb).status_code == 200

    service, thread = restart_with(stack, dim64_embedder)
    with thread as server:
        again = ChatchatClient(server.url, AUTH)
        search = again.http.post(
            "/knowledge_base/search_docs", json={"knowledge_base_name": kb, "query": "bamboo"}
        )
        assert search.status_code == 409, search.text
        deleted = again.http.post(
            "/knowledge_base/delete_docs",
            json={"knowledge_base_name": kb, "file_names": ["rocket.txt"], "delete_content": True},
        )
        assert deleted.status_code == 200 and deleted.json()["code"] == 200, deleted.text
        assert again.list_kb_docs(kb) == ["panda.txt"]

        events = again.recreate_vector_store(kb)
        assert [e["code"] for e in events] == [200], events
        assert service.get_kb(kb)[0].embed_model == "minilm-dim64"
        hits = again.search_kb_docs(kb, "What do pandas eat?", top_k=1)
        assert hits and hits[0]["metadata"]["source"] == "panda.txt"
        r = again.upload_kb_docs([("rocket.txt", ROCKET.encode())], kb)
        assert r.status_code == 200 and r.json()["data"]["embedded_files"] == ["rocket.txt"]
        hits = again.search_kb_docs(kb, "Apollo astronauts on the Moon", top_k=1)
        assert hits and hits[0]["metadata"]["source"] == "rocket.txt"
    stack.service = service


def store_as_import(service: KnowledgeService, kb: str, name: str, text: str) -> None:
    """What a bulk-import worker stores: chunks and vectors, and the import's record of the
    file (its original stays in the import source, not on the KB volume)."""
    vectors = service.embedder.encode([text])
    record = FileRecord(name, f"sha256:{name}", len(text), 1)
    imports = service.import_store(kb)
    service.store_embedded(
        kb,
        [EmbeddedFile(record, [text], vectors)],
        within=lambda: imports.record(kb, "oss-1", 0, 1, [FileOutcome(name, name, "stored")]),
    )


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
def test_imported_files_and_a_model_of_another_dimension(
    vs_type, tmp_path, embedder, dim64_embedder, request
):
    """PostgreSQL: the rebuild re-embeds the imported chunks into a table of the new dimension.
    faiss: refused before anything changes (its start-up check would forget files whose
    vectors are missing, and their chunks are the only copy here), the message saying what to
    do."""
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    kb = new_kb_name()
    service = KnowledgeService(embedder, tmp_path / "kb", conninfo, vs_type)
    service.create_kb(kb, vs_type, None)
    store_as_import(service, kb, "panda.txt", PANDA)
    service.close()

    service = KnowledgeService(dim64_embedder, tmp_path / "kb", conninfo, vs_type)
    try:
        imported = service.imported_files(kb)
        assert sorted(imported) == ["panda.txt"]
        if vs_type == "faiss":
            with pytest.raises(KnowledgeBaseError, match="dimension 384.* gives 64") as refused:
                service.reset_vectors(kb, imported)
            assert refused.value.status == 409 and "delete_docs" in refused.value.message
            assert [c.content for c in service._meta_for("faiss").file_chunks(kb, "panda.txt")] == [
                PANDA
            ]
            return
        service.reset_vectors(kb, imported)
        assert service.reembed_stored(kb, sorted(imported)) == 1
        service.finish_rebuild(kb)
        hits = service.search(kb, "What do pandas eat?", 1, 2.0)
        assert [h.file_name for h in hits] == ["panda.txt"]
        assert service._index(service.get_kb(kb)[0]).stored_dim() == 64
    finally:
        service.close()


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
def test_an_emptied_kb_takes_a_model_of_another_dimension(
    vs_type, tmp_path, embedder, dim64_embedder, request
):
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    kb = new_kb_name()
    service = KnowledgeService(embedder, tmp_path / "kb", conninfo, vs_type)
    service.create_kb(kb, vs_type, None)
    store_as_import(service, kb, "panda.txt", PANDA)
    service.delete_files(kb, ["panda.txt"], delete_content=True)
    service.close()

    service = KnowledgeService(dim64_embedder, tmp_path / "kb", conninfo, vs_type)
    try:
        assert service._index(service.get_kb(kb)[0]).stored_dim() == 384
        store_as_import(service, kb, "rocket.txt", ROCKET)  # the empty KB takes the new model
        assert service.get_kb(kb)[0].embed_model == "minilm-dim64"
        assert service._index(service.get_kb(kb)[0]).stored_dim() == 64
        hits = service.search(kb, "Apollo astronauts on the Moon", 1, 2.0)
        assert [h.file_name for h in hits] == ["rocket.txt"]
    finally:
        service.close()
