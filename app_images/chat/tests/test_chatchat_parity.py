"""The rest of Chatchat 0.2's API, driven the way 0.2.10's own `ApiRequest` calls it.

`tests/chatchat_0_2_10.py` lists every public method of that class (from its source, with the
commit); one test drives each of them against a running API and checks none gets a 404, the
others check what each answers against what the service holds.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from chat_server import prompts
from chat_server.api import create_app
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from tests.chatchat_0_2_10 import CALLS, COMMIT, TRANSPORT
from tests.chatchat_client import ChatchatClient
from tests.conftest import AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread, free_port

PANDA = (
    "Giant pandas live in the mountains of Sichuan in China.\n\n"
    "They eat about twelve kilograms of bamboo every day.\n\n"
    "A newborn panda weighs about as much as a stick of butter."
)
ROCKET = "The Saturn V rocket burned liquid hydrogen and liquid oxygen in its upper stages."
FAISS_ONLY = pytest.mark.parametrize("vs_type", ["faiss"])  # nothing here depends on the store


class Recorder:
    """Every request the client sends and the status it got (an httpx response hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        self.seen.append((request.method, request.url.path, response.status_code))


@pytest.fixture()
def client(stack) -> ChatchatClient:
    return ChatchatClient(stack.url, AUTH)


@pytest.fixture()
def kb(client, stack) -> str:
    name = new_kb_name()
    assert client.create_knowledge_base(name, stack.vs_type, "bge-large-zh-v1.5")["code"] == 200
    return name


def upload(client: ChatchatClient, kb: str, files: list[tuple[str, str]], **kw) -> None:
    r = client.upload_kb_docs([(n, t.encode()) for n, t in files], kb, **kw)
    assert r.status_code == 200, r.text


def test_the_method_list_is_0_2_10s_and_every_method_is_modelled_and_routed(stack):
    assert len(COMMIT) == 40
    # 28 request methods + 4 transport helpers: ApiRequest's public methods at that commit.
    assert len(CALLS) == 28 and len(TRANSPORT) == 4
    missing = [name for name in CALLS if not callable(getattr(ChatchatClient, name, None))]
    assert missing == []
    paths = create_app(stack.settings, stack.service).openapi()["paths"]
    unrouted = [(m, p) for m, p in CALLS.values() if m.lower() not in paths.get(p, {})]
    assert unrouted == []


@FAISS_ONLY
def test_every_api_request_method_gets_an_answer_and_none_a_404(stack):
    """Each method of the list, called as 0.2's web UI calls it; the requests are recorded."""
    record = Recorder()
    c = ChatchatClient(stack.url, AUTH)
    c.http.event_hooks["response"].append(record)
    name = new_kb_name()
    calls = {
        "create_knowledge_base": lambda: c.create_knowledge_base(name, "faiss", "bge"),
        "list_knowledge_bases": c.list_knowledge_bases,
        "upload_kb_docs": lambda: c.upload_kb_docs([("panda.txt", PANDA.encode())], name),
        "list_kb_docs": lambda: c.list_kb_docs(name),
        "search_kb_docs": lambda: c.search_kb_docs(name, "What do pandas eat?"),
        "update_kb_info": lambda: c.update_kb_info(name, "熊猫资料"),
        "update_kb_docs": lambda: c.update_kb_docs(name, ["panda.txt"]),
        "update_docs_by_id": lambda: c.update_docs_by_id(
            name, {c.search_kb_docs(name, file_name="panda.txt")[0]["id"]: {"page_content": "x"}}
        ),
        "recreate_vector_store": lambda: c.recreate_vector_store(name),
        "knowledge_base_chat": lambda: c.knowledge_base_chat("What do pandas eat?", name),
        "chat_chat": lambda: c.chat_chat("hello"),
        "upload_temp_docs": lambda: c.upload_temp_docs([("rocket.txt", ROCKET.encode())]),
        "file_chat": lambda: c.file_chat(
            "What did the rocket burn?",
            c.upload_temp_docs([("r.txt", ROCKET.encode())])["data"]["id"],
        ),
        "chat_feedback": lambda: c.chat_feedback("0123456789abcdef", 80, "good"),
        "get_server_configs": c.get_server_configs,
        "list_search_engines": c.list_search_engines,
        "get_prompt_template": c.get_prompt_template,
        "list_running_models": c.list_running_models,
        "get_default_llm_model": c.get_default_llm_model,
        "list_config_models": c.list_config_models,
        "get_model_config": lambda: c.get_model_config("stub"),
        "stop_llm_model": lambda: c.stop_llm_model("stub"),
        "change_llm_model": lambda: c.change_llm_model("stub", "other", config_check=False),
        "embed_texts": lambda: c.embed_texts(["hello"]),
        "search_engine_chat": lambda: c.search_engine_chat("news", "duckduckgo"),
        "agent_chat": lambda: c.agent_chat("weather?"),
        "delete_kb_docs": lambda: c.delete_kb_docs(name, ["panda.txt"]),
        "delete_knowledge_base": lambda: c.delete_knowledge_base(name),
    }
    assert sorted(calls) == sorted(CALLS)  # every method of the list, no other
    for method in calls:
        before = len(record.seen)
        calls[method]()
        sent = record.seen[before:]
        assert CALLS[method][:2] in [(m, p) for m, p, _ in sent], (method, sent)
        assert all(status != 404 for _, _, status in sent), (method, sent)
        # 200, except the clear refusals of what this deployment does not have or manage.
        expected = {"search_engine_chat": 501, "agent_chat": 501}
        expected |= {"stop_llm_model": 409, "change_llm_model": 409}
        assert [s for _, _, s in sent][-1] == expected.get(method, 200), (method, sent)


def test_file_chat_answers_from_the_uploaded_files_only(client, stack):
    body = client.upload_temp_docs(
        [("panda.txt", PANDA.encode()), ("empty.txt", b""), ("rocket.md", ROCKET.encode())]
    )
    assert body["code"] == 200
    kb_id = body["data"]["id"]
    failed = body["data"]["failed_files"]
    assert [list(f) for f in failed] == [["empty.txt"]] and "empty" in failed[0]["empty.txt"]
    events = client.file_chat("How much bamboo do pandas eat every day?", kb_id, top_k=1)
    answer = "".join(e.get("answer", "") for e in events)
    assert answer.startswith("STUB ANSWER") and "twelve kilograms of bamboo" in answer
    docs = events[-1]["docs"]
    assert len(docs) == 1 and docs[0].startswith("出处 [1] [panda.txt]")
    whole = client.file_chat("What did the rocket burn?", kb_id, stream=False, top_k=1)
    assert len(whole) == 1 and "liquid hydrogen" in whole[0]["answer"]
    # Nothing of it reached a knowledge base.
    assert all(not client.list_kb_docs(k) for k in client.list_knowledge_bases())

    # prev_id (0.2's server field) replaces the files and keeps the id.
    r = client.http.post(
        "/knowledge_base/upload_temp_docs",
        data={"prev_id": kb_id},
        files=[("files", ("rocket.md", ROCKET.encode()))],
    )
    assert r.json()["data"]["id"] == kb_id
    events = client.file_chat("pandas", kb_id, top_k=5, score_threshold=2.0)  # any distance
    assert [d.split("] [")[1].split("]")[0] for d in events[-1]["docs"]] == ["rocket.md"]

    gone = client.file_chat("pandas", "0" * 32)
    assert gone[0]["code"] == 404 and "upload the files again" in gone[0]["msg"]


def test_document_editor_lists_a_files_chunks_and_stores_edited_ones(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA), ("rocket.md", ROCKET)], chunk_size=60)
    listed = client.search_kb_docs(kb, file_name="panda.txt")
    texts = [d["page_content"] for d in listed]
    assert len(texts) == 3 and texts[1] == "They eat about twelve kilograms of bamboo every day."
    assert {d["metadata"]["source"] for d in listed} == {"panda.txt"}
    assert all(d["type"] == "Document" and d["id"].isdigit() for d in listed)
    assert client.search_kb_docs(kb) == []  # neither query nor file: nothing, as in 0.2

    # 0.2's editor sends the chunks it changed as docs={file: [...]}: they are stored as given.
    edited = [{"page_content": "Pandas also eat small rodents.", "type": "Document"}]
    body = client.update_kb_docs(kb, ["panda.txt"], docs={"panda.txt": edited})
    assert body["code"] == 200, body
    assert [d["page_content"] for d in client.search_kb_docs(kb, file_name="panda.txt")] == [
        "Pandas also eat small rodents."
    ]
    hit = client.search_kb_docs(kb, "Do pandas eat rodents?", top_k=1)[0]
    assert hit["page_content"] == "Pandas also eat small rodents."  # embedded, searchable

    # Given chunks survive a plain update_docs; override_custom_docs re-splits the file.
    client.update_kb_docs(kb, ["panda.txt"], chunk_size=60)
    assert len(client.search_kb_docs(kb, file_name="panda.txt")) == 1
    client.update_kb_docs(kb, ["panda.txt"], override_custom_docs=True, chunk_size=60)
    assert len(client.search_kb_docs(kb, file_name="panda.txt")) == 3

    missing = client.http.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": kb, "file_name": "nope.txt"}
    )
    assert missing.status_code == 404 and "nope.txt" in missing.json()["msg"]


def test_upload_docs_stores_the_chunks_given_in_docs(client, kb, stack):
    # 0.2.10's upload_docs takes docs={file: [documents]} (a JSON form field) and stores those
    # chunks for the named files instead of the split ones; the other files are split.
    given = {"panda.txt": [{"page_content": "Pandas also eat small rodents."}, "And eggs."]}
    r = client.http.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb, "chunk_size": 60, "docs": json.dumps(given)},
        files=[("files", ("panda.txt", PANDA.encode())), ("files", ("rocket.md", ROCKET.encode()))],
    )
    assert r.status_code == 200 and r.json()["code"] == 200, r.text
    chunks = [d["page_content"] for d in client.search_kb_docs(kb, file_name="panda.txt")]
    assert chunks == ["Pandas also eat small rodents.", "And eggs."]
    assert len(client.search_kb_docs(kb, file_name="rocket.md")) > 1  # split as usual
    hit = client.search_kb_docs(kb, "Do pandas eat rodents?", top_k=1)[0]
    assert hit["page_content"] == "Pandas also eat small rodents."

    # docs for a file neither uploaded nor stored, or not JSON: refused before anything is written
    for bad, needle in ((json.dumps({"ghost.txt": ["x"]}), "ghost.txt"), ("{not json", "JSON")):
        r = client.http.post(
            "/knowledge_base/upload_docs",
            data={"knowledge_base_name": kb, "docs": bad},
            files=[("files", ("late.txt", b"Late arrivals are listed here."))],
        )
        assert r.status_code == 400 and needle in r.json()["msg"], r.text
    assert "late.txt" not in client.list_kb_docs(kb)


def test_update_docs_by_id_edits_and_deletes_chunks(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA)], chunk_size=60)
    first, second, third = client.search_kb_docs(kb, file_name="panda.txt")
    r = client.update_docs_by_id(
        kb,
        {
            second["id"]: {"page_content": "Pandas sleep in trees.", "metadata": {}},
            third["id"]: None,  # deleted, as 0.2 deletes a None document
        },
    )
    assert r.status_code == 200 and r.json()["data"]["updated_files"] == ["panda.txt"]
    listed = client.search_kb_docs(kb, file_name="panda.txt")
    after = [d["page_content"] for d in listed]
    assert after == [first["page_content"], "Pandas sleep in trees."]
    # The file is rewritten: every chunk of it has a new id, the old ones are gone.
    old_ids = {first["id"], second["id"], third["id"]}
    assert not old_ids & {d["id"] for d in listed}
    stale = client.update_docs_by_id(kb, {first["id"]: {"page_content": "x"}})
    assert stale.status_code == 404
    assert client.search_kb_docs(kb, "Where do pandas sleep?", top_k=1)[0]["page_content"] == (
        "Pandas sleep in trees."
    )
    unknown = client.update_docs_by_id(kb, {"999999": {"page_content": "x"}})
    assert unknown.status_code == 404 and "999999" in unknown.json()["msg"]
    bad = client.update_docs_by_id(kb, {"abc": {"page_content": "x"}})
    assert bad.status_code == 400 and "'abc'" in bad.json()["msg"]


def test_kb_description_and_feedback_are_stored_durably(client, stack, embedder):
    name = "产品手册"
    assert client.create_knowledge_base(name, stack.vs_type, "bge")["code"] == 200
    assert stack.service.kb_info(name) == "关于产品手册的知识库"  # 0.2's default
    body = client.update_kb_info(name, "公司产品的使用说明")
    assert body == {
        "code": 200,
        "msg": "知识库介绍修改完成",
        "data": {"kb_info": "公司产品的使用说明"},
    }
    assert client.chat_feedback("a" * 32, 90, "答得好").json()["code"] == 200
    assert client.chat_feedback("a" * 33, 90).status_code == 422  # 0.2's 32-character id
    assert client.chat_feedback("b1", 101).status_code == 422

    # A new service on the same volume / database reads both back.
    again = KnowledgeService(embedder, stack.settings.kb_root, stack.conninfo, stack.vs_type)
    try:
        assert again.kb_info(name) == "公司产品的使用说明"
        assert [(m, s, r) for m, s, r, _ in again.feedback("a" * 32)] == [("a" * 32, 90, "答得好")]
    finally:
        again.close()
    client.delete_knowledge_base(name)
    client.create_knowledge_base(name, stack.vs_type, "bge")
    assert stack.service.kb_info(name) == "关于产品手册的知识库"  # not inherited


@FAISS_ONLY
def test_server_configs_prompts_and_the_modes_this_deployment_lacks(client, stack):
    configs = client.get_server_configs()
    assert configs["LLM_MODELS"] == ["stub-model"] and configs["CHUNK_SIZE"] == 250
    assert configs["PROMPT_TEMPLATES"]["knowledge_base_chat"] == prompts.KB_PROMPTS
    assert "key" not in json.dumps(configs).lower()
    text = client.get_prompt_template("knowledge_base_chat", "default")
    assert json.loads(text) == prompts.KB_PROMPTS["default"]  # 0.2 answered a JSON string
    assert json.loads(client.get_prompt_template()) == prompts.LLM_PROMPTS["default"]
    r = client.http.post("/server/get_prompt_template", json={"type": "llm_chat", "name": "nope"})
    assert r.status_code == 404 and "'nope'" in r.json()["msg"] and "default" in r.json()["msg"]
    assert client.list_search_engines() == []
    for events in (client.search_engine_chat("news", "bing"), client.agent_chat("hi")):
        assert len(events) == 1 and events[0]["code"] == 501
        assert "not available in this deployment" in events[0]["msg"]


@FAISS_ONLY
def test_llm_model_routes_report_the_llm_services_model(client, stack, embedder, model_dir):
    running = client.list_running_models()
    assert list(running) == ["stub"]  # what the llm's /v1/models says, not LLM_MODEL
    assert running["stub"]["max_model_len"] == 2048 and running["stub"]["online_api"] is False
    assert client.get_default_llm_model() == ("stub", True)
    assert client.list_config_models() == {"local": running, "online": {}}
    assert client.get_model_config("stub") == running["stub"]
    assert client.get_model_config("other") == {}
    for body in (
        client.stop_llm_model("stub"),
        client.change_llm_model("stub", "qwen", config_check=False),
    ):
        assert body["code"] == 409 and "managed by the deployment" in body["msg"]
    assert client.change_llm_model("stub", "stub")["msg"] == "无需切换"  # 0.2's own check

    down = make_settings(stack.settings.kb_root, f"http://127.0.0.1:{free_port()}", model_dir)
    llm = LLMClient(down.llm_base_url, "k", "m", 2, 0.5)
    with ServerThread(create_app(down, stack.service, llm)) as server:
        r = httpx.post(f"{server.url}/llm_model/list_running_models", json={}, headers=AUTH)
        assert r.status_code == 503 and r.json()["data"] == {} and "unreachable" in r.json()["msg"]


@FAISS_ONLY
def test_embed_texts_uses_the_deployments_model(client, embedder):
    vectors = client.embed_texts(["大熊猫吃竹子", "rockets burn hydrogen"])
    assert np.allclose(
        vectors, embedder.encode(["大熊猫吃竹子", "rockets burn hydrogen"]), atol=1e-5
    )
    assert client.embed_texts([]) == []
