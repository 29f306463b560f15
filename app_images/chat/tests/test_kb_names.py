"""Knowledge-base names are display names (any Unicode); storage uses derived ids.

Run against faiss and PostgreSQL+pgvector through the API, with the real MiniLM model.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import openai
import psycopg
import pytest

from chat_server.kb.service import KnowledgeService
from chat_server.stores.base import FileRecord, KnowledgeBase, kb_storage_id
from chat_server.stores.faiss_store import FaissIndex, sqlite_meta
from chat_server.stores.pg_store import PgDatabase
from tests.chatchat_client import ChatchatClient
from tests.conftest import API_KEY, AUTH

PANDA = (
    "大熊猫主要生活在中国四川的山区。它们每天要吃大约十二公斤的竹子。\n\n"
    "Giant pandas live in the mountains of Sichuan in China. "
    "They eat about twelve kilograms of bamboo every day."
)
INJECTION = 'x"; DROP TABLE kb_files; --'
NAMES = ["产品手册", "my docs", "team-a", INJECTION]


@pytest.fixture()
def client(stack) -> ChatchatClient:
    return ChatchatClient(stack.url, AUTH)


def stored_dirs(kb_root: Path) -> set[str]:
    return {p.name for p in kb_root.iterdir() if p.is_dir()}


def vector_tables(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("name", NAMES)
def test_unicode_name_works_on_every_route(client, stack, name):
    created = client.create_knowledge_base(name, stack.vs_type, stack.service.embedder.name)
    assert created["code"] == 200, created
    assert name in client.list_knowledge_bases()  # exactly as typed

    # Storage is named by the derived id, never by the display name.
    storage = kb_storage_id(name)
    assert re.fullmatch(r"kb-[0-9a-f]{20}", storage)
    assert storage in stored_dirs(stack.settings.kb_root)
    assert name not in stored_dirs(stack.settings.kb_root)
    if stack.vs_type == "adb":
        assert f"chat_vec_{storage}" in vector_tables(stack.conninfo)

    r = client.upload_kb_docs([("panda.txt", PANDA.encode())], name)
    assert r.status_code == 200 and r.json()["data"]["embedded_files"] == ["panda.txt"], r.text
    assert client.list_kb_docs(name) == ["panda.txt"]
    (hit,) = client.search_kb_docs(name, "What do pandas eat?", top_k=1)
    assert hit["metadata"]["source"] == "panda.txt" and "bamboo" in hit["page_content"]

    events = client.knowledge_base_chat("What do pandas eat?", name, top_k=1)
    assert "bamboo" in "".join(e.get("answer", "") for e in events)
    link = re.search(r"\((http[^)]+download_doc[^)]+)\)", events[-1]["docs"][0])
    assert link, events[-1]["docs"]
    download = client.http.get(link.group(1))  # the source link round-trips the name
    assert download.status_code == 200 and download.content == PANDA.encode()

    assert client.delete_knowledge_base(name)["code"] == 200
    assert name not in client.list_knowledge_bases()
    assert storage not in stored_dirs(stack.settings.kb_root)
    if stack.vs_type == "adb":
        tables = vector_tables(stack.conninfo)
        assert f"chat_vec_{storage}" not in tables
        assert {"chat_kb", "chat_file", "chat_chunk"} <= tables  # the "injection" was a name


def test_openai_client_answers_from_a_chinese_named_kb(client, stack):
    name = "产品手册"
    assert client.create_knowledge_base(name, stack.vs_type, "")["code"] == 200
    assert client.upload_kb_docs([("panda.txt", PANDA.encode())], name).status_code == 200
    oa = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=API_KEY, max_retries=0)
    assert f"kb:{name}" in [m.id for m in oa.models.list()]
    reply = oa.chat.completions.create(
        model=f"kb:{name}", messages=[{"role": "user", "content": "What do pandas eat?"}]
    )
    assert "bamboo" in (reply.choices[0].message.content or "")


@pytest.mark.parametrize("vs_type", ["faiss"])
def test_names_equal_after_nfc_are_one_kb(client, stack):
    decomposed = unicodedata.normalize("NFD", "Café 手册")
    composed = unicodedata.normalize("NFC", "Café 手册")
    assert decomposed != composed
    assert client.create_knowledge_base(decomposed, "faiss", "")["code"] == 200
    again = client.http.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": composed}
    )
    assert again.status_code == 409, again.text
    assert client.upload_kb_docs([("panda.txt", PANDA.encode())], composed).status_code == 200
    assert client.list_kb_docs(decomposed) == ["panda.txt"]
    assert kb_storage_id(decomposed) == kb_storage_id(composed)


BAD_NAMES = [
    ("../x", "path separator"),
    ("a/b", "path separator"),
    ("a\\b", "path separator"),
    ("..", "path separator"),
    ("", "empty"),
    ("   ", "empty"),
    ("a\x00b", "control characters"),
    ("line\nbreak", "control characters"),
    ("长" * 101, "at most 100"),
]


@pytest.mark.parametrize("vs_type", ["faiss"])
@pytest.mark.parametrize(("name", "rule"), BAD_NAMES)
def test_unsafe_names_are_refused_on_every_route(client, stack, name, rule):
    http = client.http
    answers = {
        "create": http.post(
            "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}
        ),
        "upload": client.upload_kb_docs([("panda.txt", PANDA.encode())], name),
        "list_files": http.get("/knowledge_base/list_files", params={"knowledge_base_name": name}),
        "search": http.post(
            "/knowledge_base/search_docs", json={"query": "panda", "knowledge_base_name": name}
        ),
        "chat": http.post(
            "/chat/knowledge_base_chat",
            json={"query": "panda", "knowledge_base_name": name, "stream": False},
        ),
        "delete": http.post("/knowledge_base/delete_knowledge_base", json=name),
    }
    if name == "":  # an empty multipart form field reads as a missing one (FastAPI)
        r = answers.pop("upload")
        assert r.status_code == 422 and "knowledge_base_name" in r.json()["msg"], r.text
    for route, r in answers.items():
        assert r.status_code == 400, (route, r.text)
        assert rule in r.json()["msg"], (route, r.text)
    if name:  # model "kb:" with nothing after it is plain chat, not a KB name
        oa = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError, match=re.escape(rule)):
            oa.chat.completions.create(
                model=f"kb:{name}", messages=[{"role": "user", "content": "panda"}]
            )
    assert client.list_knowledge_bases() == []


def write_legacy_kb(kb_root: Path, conninfo: str | None, embedder, name: str) -> None:
    """A KB as the previous code laid it out: `<kb_root>/<name>/` and `chat_vec_<lower name>`."""
    dim, vector = embedder.dim, embedder.encode([PANDA])[0]
    record = FileRecord("panda.txt", "f" * 64, len(PANDA), 1)
    ids = np.array([1], dtype=np.int64)
    if conninfo is None:
        meta = sqlite_meta(kb_root)
        meta.create_kb(KnowledgeBase(name, "faiss", embedder.name))
        index = FaissIndex(kb_root / name / "vector_store", dim)
        index.add(ids, vector.reshape(1, -1))
        meta.reserve_ids(name, 1)
        meta.replace_file(name, record, ids, [PANDA])
    else:
        db = PgDatabase(conninfo, dim)
        meta = db.meta()
        meta.create_kb(KnowledgeBase(name, "adb", embedder.name))
        literal = "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"
        with db.connect() as conn:
            conn.execute(
                f"CREATE TABLE chat_vec_{name.lower()} "
                f"(id BIGINT PRIMARY KEY, embedding vector({dim}))"
            )
            conn.execute(f"INSERT INTO chat_vec_{name.lower()} VALUES (1, %s::vector)", (literal,))
        meta.reserve_ids(name, 1)
        meta.replace_file(name, record, ids, [PANDA])
        db.close()
    (kb_root / name / "content").mkdir(parents=True, exist_ok=True)
    (kb_root / name / "content" / "panda.txt").write_text(PANDA)


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
def test_kb_of_the_previous_layout_keeps_working(tmp_path, embedder, vs_type, request):
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    kb_root = tmp_path / "kb"
    write_legacy_kb(kb_root, conninfo, embedder, "Legacy_KB")

    service = KnowledgeService(embedder, kb_root, conninfo, vs_type)
    try:
        assert [kb.name for kb in service.list_kbs()] == ["Legacy_KB"]
        (hit,) = service.search("Legacy_KB", "What do pandas eat?", 1, 1.0)
        assert hit.file_name == "panda.txt" and "bamboo" in hit.content
        assert service.file_path("Legacy_KB", "panda.txt") == (
            kb_root / "Legacy_KB" / "content" / "panda.txt"
        )
        if conninfo is not None:
            assert "chat_vec_legacy_kb" in vector_tables(conninfo)
        service.delete_kb("Legacy_KB")
        assert not (kb_root / "Legacy_KB").exists()
        if conninfo is not None:
            assert "chat_vec_legacy_kb" not in vector_tables(conninfo)
    finally:
        service.close()
