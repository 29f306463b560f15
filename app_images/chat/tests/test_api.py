"""The API suite, run against faiss and against PostgreSQL+pgvector (the `adb` store)."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import openai
import pytest

from chat_server.api import create_app
from chat_server.kb.service import KnowledgeService
from chat_server.llm_client import LLMClient
from tests.chatchat_client import ChatchatClient
from tests.conftest import API_KEY, AUTH, make_settings, new_kb_name
from tests.stub_llm import ServerThread, free_port

PANDA = (
    "大熊猫主要生活在中国四川的山区。它们每天要吃大约十二公斤的竹子。\n\n"
    "Giant pandas live in the mountains of Sichuan in China. "
    "They eat about twelve kilograms of bamboo every day."
)
PANDA_Q = "What do giant pandas eat every day?"
ROCKET = (
    "The Saturn V rocket carried the Apollo astronauts to the Moon. "
    "It burned liquid hydrogen and liquid oxygen in its upper stages."
)


@pytest.fixture()
def client(stack) -> ChatchatClient:
    return ChatchatClient(stack.url, AUTH)


@pytest.fixture()
def kb(client, stack) -> str:
    name = new_kb_name()
    body = client.create_knowledge_base(name, stack.vs_type, stack.service.embedder.name)
    assert body["code"] == 200, body
    return name


def upload(client, kb, files, **kw) -> dict:
    r = client.upload_kb_docs(files, kb, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def test_knowledge_base_lifecycle(client, stack):
    name = new_kb_name()
    assert (
        client.create_knowledge_base(name, stack.vs_type, stack.service.embedder.name)["code"]
        == 200
    )
    assert name in client.list_knowledge_bases()
    again = client.http.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}
    )
    assert again.status_code == 409 and name in again.json()["msg"]
    assert client.delete_knowledge_base(name)["code"] == 200
    assert name not in client.list_knowledge_bases()
    assert not (stack.settings.kb_root / name).exists()


def test_upload_search_and_kb_chat_show_sources(client, kb, stack):
    body = upload(client, kb, [("panda.txt", PANDA.encode()), ("rocket.md", ROCKET.encode())])
    assert body["code"] == 200 and sorted(body["data"]["embedded_files"]) == [
        "panda.txt",
        "rocket.md",
    ]
    assert client.list_kb_docs(kb) == ["panda.txt", "rocket.md"]

    docs = client.search_kb_docs(kb, "What do pandas eat?", top_k=1)
    assert docs[0]["metadata"]["source"] == "panda.txt"
    assert "bamboo" in docs[0]["page_content"] and 0 <= docs[0]["score"] <= 1.0
    assert (
        client.search_kb_docs(kb, "Which fuel did the Moon rocket burn?", top_k=1)[0]["metadata"][
            "source"
        ]
        == "rocket.md"
    )

    events = client.knowledge_base_chat("What do pandas eat?", kb, top_k=1)
    answer = "".join(e.get("answer", "") for e in events)
    assert len([e for e in events if "answer" in e]) > 1  # streamed in pieces
    assert answer.startswith("STUB ANSWER") and "bamboo" in answer  # context reached the llm
    docs_event = events[-1]["docs"]
    assert "panda.txt" in docs_event[0] and "download_doc" in docs_event[0]


def test_kb_chat_without_stream_returns_answer_and_docs(client, kb):
    upload(client, kb, [("rocket.md", ROCKET.encode())])
    (event,) = client.knowledge_base_chat("Saturn V fuel", kb, stream=False)
    assert "Saturn V" in event["answer"] and "rocket.md" in event["docs"][0]


def test_chat_without_kb_streams_text(client):
    events = client.chat_chat(
        "hello there",
        history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    )
    text = "".join(e["text"] for e in events)
    assert text == "STUB ANSWER to: hello there"
    assert len({e["message_id"] for e in events}) == 1


def test_reupload_unchanged_file_embeds_nothing(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA.encode())])
    before = stack.service.embedder.texts_embedded
    body = upload(client, kb, [("panda.txt", PANDA.encode())], override=True)
    assert body["data"]["unchanged_files"] == ["panda.txt"]
    assert stack.service.embedder.texts_embedded == before


def test_override_replaces_old_vectors(client, kb):
    upload(client, kb, [("notes.txt", PANDA.encode())])
    conflict = client.upload_kb_docs([("notes.txt", ROCKET.encode())], kb)
    assert conflict.status_code == 409 and "override" in conflict.json()["msg"]
    upload(client, kb, [("notes.txt", ROCKET.encode())], override=True)
    docs = client.search_kb_docs(kb, "pandas bamboo", top_k=5, score_threshold=2.0)
    assert docs and all("bamboo" not in d["page_content"] for d in docs)
    assert any("Saturn" in d["page_content"] for d in docs)


def test_restart_reembeds_nothing(client, kb, stack, embedder):
    upload(client, kb, [("panda.txt", PANDA.encode()), ("rocket.md", ROCKET.encode())])
    stack.service.close()
    before = embedder.texts_embedded
    restarted = KnowledgeService(embedder, stack.settings.kb_root, stack.conninfo, stack.vs_type)
    llm = LLMClient(stack.settings.llm_base_url, "k", "stub-model", 10, 1)
    with ServerThread(create_app(stack.settings, restarted, llm)) as server:
        again = ChatchatClient(server.url, AUTH)
        assert again.list_kb_docs(kb) == ["panda.txt", "rocket.md"]
        body = upload(again, kb, [("panda.txt", PANDA.encode())], override=True)
        assert body["data"]["unchanged_files"] == ["panda.txt"]
        assert embedder.texts_embedded == before  # nothing embedded at start-up or re-upload
        hit = again.search_kb_docs(kb, PANDA_Q, top_k=1)[0]
        assert hit["metadata"]["source"] == "panda.txt"
    assert embedder.texts_embedded == before + 1  # only the search query
    stack.service = restarted


@pytest.mark.parametrize(
    ("file_name", "content", "status", "needle"),
    [
        ("../escape.txt", b"text", 400, "not allowed"),
        ("sub/dir.txt", b"text", 400, "not allowed"),
        ("..\\win.txt", b"text", 400, "not allowed"),
        (".hidden.txt", b"text", 400, "not allowed"),
        ("program.exe", b"MZ", 415, "unsupported"),
        ("empty.txt", b"", 400, "empty"),
        ("blank.md", b"  \n\n ", 400, "no text"),
        ("latin1.txt", "café olé".encode("latin-1"), 400, "UTF-8"),
        ("broken.json", b"{not json", 400, "JSON"),
        ("broken.pdf", b"%PDF-1.4 nonsense", 400, "broken.pdf"),
        ("huge.txt", b"a " * 150_000, 413, "limit"),
    ],
)
def test_bad_upload_is_rejected_and_loses_nothing(
    client, kb, stack, file_name, content, status, needle
):
    upload(client, kb, [("panda.txt", PANDA.encode())])
    r = client.upload_kb_docs([("rocket.md", ROCKET.encode()), (file_name, content)], kb)
    assert r.status_code == status, r.text
    assert needle in r.json()["msg"]
    assert client.list_kb_docs(kb) == ["panda.txt"]  # the good file of the batch is not half-added
    content_dir = stack.settings.kb_root / kb / "content"
    assert sorted(p.name for p in content_dir.iterdir()) == ["panda.txt"]
    assert not (stack.settings.kb_root / "escape.txt").exists()
    assert client.search_kb_docs(kb, PANDA_Q, top_k=1)[0]["metadata"]["source"] == "panda.txt"


# Only unsafe names; Unicode, spaces, hyphens and SQL-looking names are valid (test_kb_names.py).
@pytest.mark.parametrize("bad_name", ["../kb", "a/b", "", " ", "a\x07b", "x" * 101])
def test_bad_kb_names_are_rejected(client, bad_name):
    r = client.http.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": bad_name}
    )
    assert r.status_code == 400 and "invalid" in r.json()["msg"]
    r = client.http.get("/knowledge_base/list_files", params={"knowledge_base_name": bad_name})
    assert r.status_code == 400
    assert bad_name not in client.list_knowledge_bases()


def test_unknown_kb_is_404(client):
    r = client.http.get("/knowledge_base/list_files", params={"knowledge_base_name": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["msg"]
    assert client.upload_kb_docs([("a.txt", b"hello")], "nope").status_code == 404
    r = client.http.post(
        "/chat/knowledge_base_chat", json={"query": "q", "knowledge_base_name": "nope"}
    )
    assert r.status_code == 404 and r.json()["code"] == 404


def test_a_large_kb_is_listed_page_by_page_and_by_name(client, kb):
    names = [
        "Report_2024.txt",
        "report%.txt",
        "REPORT-a.txt",
        "reportX2024.txt",
        "手册_一.txt",
        "a!b.txt",
        "other.txt",
    ]
    upload(client, kb, [(n, f"Text of {n}.".encode()) for n in names])

    def listed(**page) -> tuple[list[str], int]:
        r = client.http.get(
            "/knowledge_base/list_files", params={"knowledge_base_name": kb, **page}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return body["data"], body["total"]

    every, total = listed()  # no parameters: every file, as Chatchat 0.2 lists them
    assert sorted(every) == sorted(names) and total == len(names)
    pages = [listed(offset=offset, limit=3) for offset in (0, 3, 6)]
    assert [len(p) for p, _ in pages] == [3, 3, 1]
    assert [n for p, _ in pages for n in p] == every  # in order, none twice, none left out
    assert {t for _, t in pages} == {len(names)}
    assert listed(offset=7, limit=3) == ([], len(names))

    def matching(text: str) -> list[str]:
        found, count = listed(name_contains=text)
        assert count == len(found)
        return sorted(found)

    # any case; `%`, `_` and `!` are the characters themselves, not patterns
    assert matching("report") == sorted(
        ["Report_2024.txt", "report%.txt", "REPORT-a.txt", "reportX2024.txt"]
    )
    assert matching("_") == sorted(["Report_2024.txt", "手册_一.txt"])
    assert matching("t_2") == ["Report_2024.txt"]
    assert matching("%") == ["report%.txt"]
    assert matching("!") == ["a!b.txt"]
    assert matching("手册") == ["手册_一.txt"]
    assert matching("nothing") == []
    assert listed(name_contains="report", offset=1, limit=2) == (
        sorted(
            ["Report_2024.txt", "report%.txt", "REPORT-a.txt", "reportX2024.txt"], key=every.index
        )[1:3],
        4,
    )

    for bad, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
    ):
        r = client.http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb, **bad})
        assert r.status_code == 422 and field in r.json()["msg"], r.text


def test_delete_docs_removes_vectors_and_files(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA.encode()), ("rocket.md", ROCKET.encode())])
    assert client.delete_kb_docs(kb, ["panda.txt"], delete_content=True)["code"] == 200
    assert client.list_kb_docs(kb) == ["rocket.md"]
    docs = client.search_kb_docs(kb, "pandas eat bamboo", top_k=10, score_threshold=2.0)
    assert [d["metadata"]["source"] for d in docs] == ["rocket.md"]
    assert not (stack.settings.kb_root / kb / "content" / "panda.txt").exists()
    missing = client.http.post(
        "/knowledge_base/delete_docs", json={"knowledge_base_name": kb, "file_names": ["panda.txt"]}
    )
    assert missing.status_code == 404


def test_download_doc_returns_the_original_bytes(client, kb):
    upload(client, kb, [("panda.txt", PANDA.encode())])
    r = client.http.get(
        "/knowledge_base/download_doc", params={"knowledge_base_name": kb, "file_name": "panda.txt"}
    )
    assert r.status_code == 200 and r.content == PANDA.encode()
    r = client.http.get(
        "/knowledge_base/download_doc",
        params={"knowledge_base_name": kb, "file_name": "../info.sqlite"},
    )
    assert r.status_code == 400


def test_every_loader_feeds_search(client, kb):
    from docx import Document
    from reportlab.pdfgen import canvas

    pdf = io.BytesIO()
    c = canvas.Canvas(pdf)
    c.drawString(72, 720, "The lighthouse keeper polished the great Fresnel lens.")
    c.save()
    docx_buf = io.BytesIO()
    d = Document()
    d.add_paragraph("Sourdough bread needs a lively starter and a long slow rise.")
    d.save(docx_buf)
    files = [
        ("lens.pdf", pdf.getvalue()),
        ("bread.docx", docx_buf.getvalue()),
        (
            "page.html",
            b"<html><script>var x=1;</script><body><h1>Glaciers</h1>"
            b"<p>Glaciers carve U-shaped valleys.</p></body></html>",
        ),
        ("fruit.csv", b"fruit,color\nbanana,yellow\nplum,purple\n"),
        ("cfg.json", json.dumps({"volcano": "Mount Fuji is a dormant volcano"}).encode()),
    ]
    body = upload(client, kb, files)
    assert len(body["data"]["embedded_files"]) == 5
    for query, source in [
        ("Fresnel lens lighthouse", "lens.pdf"),
        ("sourdough starter", "bread.docx"),
        ("valleys carved by glaciers", "page.html"),
        ("what color is a plum", "fruit.csv"),
        ("dormant volcano in Japan", "cfg.json"),
    ]:
        assert client.search_kb_docs(kb, query, top_k=1)[0]["metadata"]["source"] == source
    html_doc = client.search_kb_docs(kb, "glaciers", top_k=1)[0]["page_content"]
    assert "var x" not in html_doc


def test_recreate_vector_store_streams_progress(client, kb):
    upload(client, kb, [("panda.txt", PANDA.encode()), ("rocket.md", ROCKET.encode())])
    events = client.stream_json(
        "/knowledge_base/recreate_vector_store",
        {"knowledge_base_name": kb, "chunk_size": 100, "chunk_overlap": 10},
    )
    assert [(e["finished"], e["total"], e["code"]) for e in events] == [(1, 2, 200), (2, 2, 200)]
    assert client.search_kb_docs(kb, PANDA_Q, top_k=1)[0]["metadata"]["source"] == "panda.txt"


def test_update_docs_reembeds_with_new_chunking(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA.encode())], chunk_size=500)
    r = client.http.post(
        "/knowledge_base/update_docs",
        json={
            "knowledge_base_name": kb,
            "file_names": ["panda.txt"],
            "chunk_size": 60,
            "chunk_overlap": 0,
        },
    )
    assert r.status_code == 200 and r.json()["data"]["updated_files"] == ["panda.txt"]
    docs = client.search_kb_docs(kb, "bamboo", top_k=10, score_threshold=2.0)
    assert len(docs) > 2 and all(len(d["page_content"]) <= 60 for d in docs)


def test_llm_down_gives_503_while_search_works(stack, kb, client):
    upload(client, kb, [("panda.txt", PANDA.encode())])
    dead = LLMClient(f"http://127.0.0.1:{free_port()}/v1", "k", "m", 5, 0.5)
    app = create_app(stack.settings, stack.service, dead)
    with ServerThread(app) as server:
        c = ChatchatClient(server.url, AUTH)
        r = c.http.post(
            "/chat/knowledge_base_chat",
            json={"query": PANDA_Q, "knowledge_base_name": kb, "stream": True},
        )
        assert r.status_code == 503 and "unreachable" in r.json()["msg"]
        assert c.http.post("/chat/chat", json={"query": "hi"}).status_code == 503
        assert c.search_kb_docs(kb, PANDA_Q, top_k=1)[0]["metadata"]["source"] == "panda.txt"
        health = c.http.get("/health").json()
        assert health["llm"] == "unreachable" and health["knowledge_base"] == "ok"


def test_openai_client_answers_from_a_knowledge_base(client, kb, stack):
    upload(client, kb, [("panda.txt", PANDA.encode())])
    oa = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=API_KEY)
    reply = oa.chat.completions.create(
        model=f"kb:{kb}", messages=[{"role": "user", "content": "What do pandas eat?"}]
    )
    assert "bamboo" in reply.choices[0].message.content
    pieces = oa.chat.completions.create(
        model="stub-model",
        stream=True,
        extra_body={"knowledge_base_name": kb},
        messages=[{"role": "user", "content": "What do pandas eat?"}],
    )
    text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert "bamboo" in text and text.startswith("STUB ANSWER")


def test_api_key_is_enforced_when_configured(stack, embedder, model_dir):
    settings = make_settings(
        stack.settings.kb_root, stack.settings.llm_base_url[:-3], model_dir, chat_api_key="s3cret"
    )
    app = create_app(settings, stack.service, LLMClient(settings.llm_base_url, "k", "m", 5, 1))
    with ServerThread(app) as server:
        r = httpx.get(f"{server.url}/knowledge_base/list_knowledge_bases")
        assert r.status_code == 401 and "Bearer" in r.json()["msg"]
        r = httpx.get(
            f"{server.url}/knowledge_base/list_knowledge_bases",
            headers={"Authorization": "Bearer wrong"},
        )
        assert r.status_code == 401
        r = httpx.get(
            f"{server.url}/knowledge_base/list_knowledge_bases",
            headers={"Authorization": "Bearer s3cret"},
        )
        assert r.status_code == 200 and r.json()["code"] == 200
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_openapi_docs_are_served(stack):
    assert httpx.get(f"{stack.url}/docs").status_code == 200
    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    assert "/knowledge_base/upload_docs" in paths and "/chat/knowledge_base_chat" in paths


def test_create_accepts_a_clients_own_embed_model_name(client, stack):
    name = new_kb_name()
    body = client.create_knowledge_base(name, stack.vs_type, "bge-large-zh-v1.5")
    assert body["code"] == 200 and name in client.list_knowledge_bases()
    unknown_type = client.http.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": new_kb_name(), "vector_store_type": "milvus"},
    )
    assert unknown_type.status_code == 400 and "milvus" in unknown_type.json()["msg"]


def test_vectors_without_committed_metadata_are_never_returned(client, kb, stack, embedder):
    """What an interrupted upload leaves behind (vectors written, metadata not) stays invisible."""
    upload(client, kb, [("panda.txt", PANDA.encode())])
    kb_obj, _ = stack.service.get_kb(kb)
    orphan = embedder.encode(["Quantum chromodynamics of gluons"])
    stack.service._index(kb_obj).add(np.array([999_999], dtype=np.int64), orphan)
    docs = client.search_kb_docs(
        kb, "Quantum chromodynamics of gluons", top_k=5, score_threshold=2.0
    )
    assert docs and all(d["id"] != "999999" for d in docs)
    assert {d["metadata"]["source"] for d in docs} == {"panda.txt"}
