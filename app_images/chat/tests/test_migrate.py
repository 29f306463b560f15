"""`python -m chat_server.migrate` as a real process against `python -m chat_server.api` (faiss,
MiniLM), importing a Chatchat 0.2-shaped volume built here, info.db included."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat_server.migrate.run import batches
from chat_server.migrate.volume import VolumeFile, find_root, read_volume, service_file_name
from tests.conftest import API_KEY, ApiProcess

CHAT_DIR = Path(__file__).resolve().parent.parent
KB = "产品手册"
KB_INFO = "产品手册与安装说明"

# Table and column names of Langchain-Chatchat 0.2.10 (commit
# 9c525b7fa5b99437cf4d5167a7d062ef778a94b1): server/db/models/knowledge_base_model.py,
# knowledge_file_model.py (SQLAlchemy models; SQLite at KB_ROOT_PATH/info.db).
INFO_DB_SCHEMA = """
CREATE TABLE knowledge_base (id INTEGER PRIMARY KEY AUTOINCREMENT, kb_name VARCHAR(50),
    kb_info VARCHAR(200), vs_type VARCHAR(50), embed_model VARCHAR(50), file_count INTEGER,
    create_time DATETIME);
CREATE TABLE knowledge_file (id INTEGER PRIMARY KEY AUTOINCREMENT, file_name VARCHAR(255),
    file_ext VARCHAR(10), kb_name VARCHAR(50), document_loader_name VARCHAR(50),
    text_splitter_name VARCHAR(50), file_version INTEGER, file_mtime FLOAT, file_size INTEGER,
    custom_docs BOOLEAN, docs_count INTEGER, create_time DATETIME);
CREATE TABLE file_doc (id INTEGER PRIMARY KEY AUTOINCREMENT, kb_name VARCHAR(50),
    file_name VARCHAR(255), doc_id VARCHAR(50), meta_data JSON);
"""


def make_volume(root: Path, bulk_files: int = 0) -> Path:
    """knowledge_base/ as 0.2 leaves it: content files, a faiss store folder, info.db."""
    kb_root = root / "knowledge_base"
    content = kb_root / KB / "content"
    (content / "安装").mkdir(parents=True)
    (content / "overview.md").write_text("# 概览\n\nThe aurora lamp ships with a walnut base.\n")
    (content / "安装" / "步骤.txt").write_text("Step one: tighten the copper hinge bolts.\n")
    (content / "diagram.vsdx").write_bytes(b"binary drawing")
    (content / "empty.txt").write_bytes(b"")
    (content / "~$lock.txt").write_text("office lock file")
    store = kb_root / KB / "vector_store" / "bge-large-zh"
    store.mkdir(parents=True)
    (store / "index.faiss").write_bytes(b"not read")
    (store / "index.pkl").write_bytes(b"never unpickled")
    bulk = kb_root / "samples" / "content"
    bulk.mkdir(parents=True)
    for i in range(bulk_files):
        (bulk / f"note{i:04d}.txt").write_text(f"Sample note {i} describes orchard {i * 7}.\n")
    db = sqlite3.connect(kb_root / "info.db")
    db.executescript(INFO_DB_SCHEMA)
    db.execute(
        "INSERT INTO knowledge_base (kb_name, kb_info, vs_type, embed_model, file_count) "
        "VALUES (?, ?, 'faiss', 'bge-large-zh', 4)",
        (KB, KB_INFO),
    )
    for name, custom in [
        ("overview.md", 0),
        ("安装/步骤.txt", 1),
        ("diagram.vsdx", 0),
        ("removed.md", 0),
    ]:
        db.execute(
            "INSERT INTO knowledge_file (file_name, file_ext, kb_name, custom_docs, file_size) "
            "VALUES (?, ?, ?, ?, 10)",
            (name, Path(name).suffix, KB, custom),
        )
    db.commit()
    db.close()
    return kb_root


def start_migrate(api: ApiProcess, volume: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CHAT_API_KEY": API_KEY, "PYTHONPATH": str(CHAT_DIR)}
    return subprocess.Popen(
        [sys.executable, "-m", "chat_server.migrate", str(volume), "--api-url", api.url]
        + ["--state", str(tmp / "state.json"), "--report", str(tmp / "report.json"), *extra],
        cwd=CHAT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def migrate(api: ApiProcess, volume: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = start_migrate(api, volume, tmp, *extra)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def report(tmp: Path) -> dict:
    return json.loads((tmp / "report.json").read_text())


def kb_report(tmp: Path, name: str) -> dict:
    return next(kb for kb in report(tmp)["knowledge_bases"] if kb["name"] == name)


def chunk_ids(api: ApiProcess, kb: str) -> dict[str, list[int]]:
    """Every file's chunk ids (fresh on every write: equal ids mean nothing was embedded)."""
    files = api.http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb})
    return {
        name: sorted(
            d["id"]
            for d in api.http.post(
                "/knowledge_base/search_docs",
                json={"knowledge_base_name": kb, "query": "", "file_name": name},
            ).json()
        )
        for name in files.json()["data"]
    }


@pytest.fixture()
def api(tmp_path, model_dir, stub_llm):
    (tmp_path / "api").mkdir()
    server = ApiProcess(tmp_path / "api", model_dir, stub_llm.url)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_02_volume_arrives_with_names_descriptions_and_reasons(api, tmp_path):
    volume = make_volume(tmp_path / "old")
    run = migrate(api, volume, tmp_path)
    assert run.returncode == 1, run.stderr  # two files could not be imported
    assert f"[kb 2/2] {KB}: 4/4 files" in run.stderr  # the lock file is not counted

    kbs = api.http.get("/knowledge_base/list_knowledge_bases").json()["data"]
    assert KB in kbs and "samples" in kbs
    files = api.http.get("/knowledge_base/list_files", params={"knowledge_base_name": KB})
    assert sorted(files.json()["data"]) == ["overview.md", "安装∕步骤.txt"]
    hits = api.http.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": KB, "query": "copper hinge bolts", "top_k": 1},
    ).json()
    assert hits and hits[0]["metadata"]["source"] == "安装∕步骤.txt"
    # No route reads kb_info back: the service's own metadata store has it.
    with sqlite3.connect(tmp_path / "api" / "kb" / "info.sqlite") as meta:
        assert meta.execute(
            "SELECT kb_info FROM chat_kb_info WHERE name = ?", (KB,)
        ).fetchall() == [(KB_INFO,)]

    mine = kb_report(tmp_path, KB)
    assert mine["kb"] == "created" and mine["kb_info"] == "set"
    assert sorted(mine["embedded"]) == ["overview.md", "安装∕步骤.txt"]
    skipped = {s["file"]: s for s in mine["skipped"]}
    assert skipped["diagram.vsdx"]["status"] == 415
    assert "unsupported type" in skipped["diagram.vsdx"]["detail"]
    assert skipped["empty.txt"]["status"] == 400
    notes = {(n["kind"], n["file"]) for n in mine["notes"]}
    assert ("missing", "removed.md") in notes
    assert ("custom_docs", "安装/步骤.txt") in notes
    assert ("ignored", "~$lock.txt") in notes
    assert ("not_in_info_db", "empty.txt") in notes
    assert any(kind == "vector_store" for kind, _ in notes)
    assert "skipped diagram.vsdx: 415" in run.stdout


def test_rerun_uploads_and_embeds_nothing(api, tmp_path):
    volume = make_volume(tmp_path / "old", bulk_files=40)
    first = migrate(api, volume, tmp_path, "--only", "samples", "--batch-files", "8")
    assert first.returncode == 0, first.stderr
    assert len(kb_report(tmp_path, "samples")["embedded"]) == 40
    before = chunk_ids(api, "samples")

    again = migrate(api, volume, tmp_path, "--only", "samples")
    assert again.returncode == 0, again.stderr
    totals = report(tmp_path)["totals"]
    assert totals["uploaded_files"] == 0 and totals["chunks_embedded"] == 0
    assert totals["unchanged"] == 40

    # Without the state every file is sent; the service finds each unchanged by content.
    stateless = migrate(api, volume, tmp_path, "--only", "samples", "--no-state")
    assert stateless.returncode == 0, stateless.stderr
    totals = report(tmp_path)["totals"]
    assert totals["uploaded_files"] == 40 and totals["chunks_embedded"] == 0
    assert totals["unchanged"] == 40
    assert chunk_ids(api, "samples") == before


def test_a_killed_run_resumes_with_every_file_once(api, tmp_path):
    volume = make_volume(tmp_path / "old", bulk_files=60)
    run = start_migrate(api, volume, tmp_path, "--only", "samples", "--batch-files", "4")
    assert run.stderr is not None
    seen = ""
    deadline = time.monotonic() + 300
    while "samples: 8/60" not in seen and "samples: 12/60" not in seen:
        assert run.poll() is None, f"the migrator ended before it was killed: {seen}"
        assert time.monotonic() < deadline, seen
        seen += run.stderr.readline()
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait(timeout=30) == -signal.SIGKILL

    again = migrate(api, volume, tmp_path, "--only", "samples")
    assert again.returncode == 0, again.stderr
    ids = chunk_ids(api, "samples")
    assert sorted(ids) == [f"note{i:04d}.txt" for i in range(60)]
    assert all(len(chunks) == 1 for chunks in ids.values())  # no file twice, no lost chunk
    mine = kb_report(tmp_path, "samples")
    assert mine["uploaded_files"] < 60  # what the killed run had finished was not sent again


def test_dry_run_writes_nothing_and_bad_usage_exits_2(api, tmp_path):
    volume = make_volume(tmp_path / "old", bulk_files=3)
    dry = migrate(api, volume, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert api.http.get("/knowledge_base/list_knowledge_bases").json()["data"] == []
    assert kb_report(tmp_path, KB)["kb"] == "would_create"
    assert len(kb_report(tmp_path, "samples")["would_upload"]) == 3

    assert migrate(api, volume, tmp_path, "--only", "nope").returncode == 2
    wrong = migrate(api, volume, tmp_path, "--api-key", "wrong")
    assert wrong.returncode == 2 and "401" in wrong.stderr
    gone = migrate(api, volume, tmp_path, "--api-url", "http://127.0.0.1:9", "--attempts", "2")
    assert gone.returncode == 2 and "no answer" in gone.stderr


def test_calls_are_retried_until_the_service_answers(tmp_path, model_dir, stub_llm):
    """Started before the API listens: connection errors (and 503 while it loads) are retried."""
    volume = make_volume(tmp_path / "old", bulk_files=2)
    (tmp_path / "api").mkdir()
    server = ApiProcess(tmp_path / "api", model_dir, stub_llm.url)  # starting, not yet up
    try:
        run = migrate(server, volume, tmp_path, "--only", "samples", "--attempts", "12")
        assert run.returncode == 0, run.stderr
        assert "retrying list_knowledge_bases after attempt 1" in run.stderr
        assert sorted(kb_report(tmp_path, "samples")["embedded"]) == [
            "note0000.txt",
            "note0001.txt",
        ]
    finally:
        server.stop()


def test_batches_are_bounded_by_bytes_and_count():
    def f(size: int) -> VolumeFile:
        return VolumeFile("x", "x", Path("x"), size, 0)

    sizes = [[g.size for g in b] for b in batches([f(5), f(5), f(20), f(1), f(1), f(1)], 10, 2)]
    assert sizes == [[5, 5], [20], [1, 1], [1]]  # a file over the bound goes alone


def test_a_subdirectory_path_becomes_a_plain_name(tmp_path):
    assert service_file_name("安装/步骤.txt") == "安装∕步骤.txt"
    assert service_file_name("a/b/c.md") == "a∕b∕c.md"
    (tmp_path / "knowledge_base").mkdir()
    assert find_root(tmp_path) == tmp_path / "knowledge_base"
    assert find_root(tmp_path / "knowledge_base") == tmp_path / "knowledge_base"


def test_two_paths_with_one_name_are_reported_not_merged(tmp_path):
    content = tmp_path / "kb" / "content"
    (content / "a").mkdir(parents=True)
    (content / "a" / "b.md").write_text("one")
    (content / "a∕b.md").write_text("two")
    (kb,) = read_volume(tmp_path).kbs
    assert [f.source for f in kb.files] == ["a/b.md"]
    assert [(s.file, s.kind) for s in kb.skipped] == [("a∕b.md", "name_collision")]
    assert not read_volume(tmp_path).has_info_db


def test_a_file_over_the_services_size_limit_is_skipped_the_rest_imported(
    tmp_path, model_dir, stub_llm
):
    volume = make_volume(tmp_path / "old", bulk_files=3)
    (volume / "samples" / "content" / "big.txt").write_text("large orchard ledger\n" * 200_000)
    (tmp_path / "api").mkdir()
    server = ApiProcess(tmp_path / "api", model_dir, stub_llm.url, MAX_UPLOAD_BYTES="100000")
    try:
        server.start()
        run = migrate(server, volume, tmp_path, "--only", "samples")
        assert run.returncode == 1, run.stderr
        mine = kb_report(tmp_path, "samples")
        assert len(mine["embedded"]) == 3
        (big,) = mine["skipped"]
        assert big["file"] == "big.txt" and big["status"] == 413
        assert "MAX_UPLOAD_BYTES" in big["detail"]
    finally:
        server.stop()


def test_a_name_the_service_refuses_is_reported_with_its_files(api, tmp_path):
    content = tmp_path / "old" / "team\\a" / "content"  # 0.2 allowed it; a path separator here
    content.mkdir(parents=True)
    (content / "plan.txt").write_text("The plan names the granite quarry.")
    run = migrate(api, tmp_path / "old", tmp_path)
    assert run.returncode == 1, run.stderr
    mine = kb_report(tmp_path, "team\\a")
    assert mine["kb"] == "refused"
    assert [(s["file"], s["status"]) for s in mine["skipped"]] == [("plan.txt", 400)]
    assert "path separator" in mine["skipped"][0]["detail"]
