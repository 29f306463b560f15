"""Bulk import (`python -m chat_server.bulk_import`) as real worker processes: PostgreSQL from
pgserver, MiniLM, the chat API as its own uvicorn process for faiss, SIGKILL mid-import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from chat_server.bulk_import.source import (
    PATH_JOINER,
    kb_file_name,
    list_source,
    shard_files,
    shard_of,
)
from chat_server.kb.service import KnowledgeBaseError, KnowledgeService, SplitParams
from chat_server.kb.spool import IncomingFile
from chat_server.stores.base import FAULT_MARKER_ENV, FAULT_PAUSE_ENV
from chat_server.stores.pg_store import table_name
from tests.chatchat_client import ChatchatClient
from tests.conftest import API_KEY, AUTH, new_kb_name
from tests.test_uploads import ApiProcess

CHAT_DIR = Path(__file__).resolve().parent.parent
KB_ZH = "产品手册 导入"


def phrase(n: int) -> str:
    return f"Ledger {n} says the lighthouse keeper of harbour {n} counted {n * 13} gulls."


def make_corpus(root: Path, files: int) -> dict[str, str]:
    """`files` small text files in nested directories (some Chinese), a corrupt PDF, a file of
    an unsupported type and a hidden file; returns {KB file name: its unique sentence}."""
    expected = {}
    for n in range(files):
        sub = root / f"part{n % 3}" / ("深层" if n % 4 == 0 else "flat")
        sub.mkdir(parents=True, exist_ok=True)
        name = f"doc{n:03d}.md" if n % 2 else f"笔记{n:03d}.txt"
        body = "\n\n".join([f"# Title {n}", phrase(n), "灯塔的记录说海鸥很多。" * (1 + n % 5)])
        (sub / name).write_text(body, encoding="utf-8")
        expected[kb_file_name((sub / name).relative_to(root).as_posix())] = phrase(n)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / "drawing.vsdx").write_bytes(b"PK\x03\x04")  # Visio: a type 0.2 and we do not load
    (root / ".hidden.txt").write_text("never listed")
    return expected


def pg_env(conninfo: str) -> dict[str, str]:
    parts = conninfo_to_dict(conninfo)
    return {
        "PG_HOST": str(parts.get("host", "")),
        "PG_PORT": str(parts.get("port", "5432")),
        "PG_DATABASE": str(parts["dbname"]),
        "PG_USER": str(parts.get("user", "postgres")),
        "PG_PASSWORD": str(parts.get("password", "")),
    }


class Worker:
    """One pod of the Job: the container's command with the environment the stack renders."""

    def __init__(
        self,
        tmp: Path,
        model_dir: Path,
        kb: str,
        source: Path,
        import_id: str,
        shard: int = 0,
        shard_count: int = 1,
        **env: str,
    ) -> None:
        self.marker = tmp / f"marker-{shard}-{time.monotonic_ns()}"
        full = {
            **os.environ,
            "PYTHONPATH": str(CHAT_DIR),
            "MODEL_ROOT": str(model_dir.parent),
            "EMBEDDING_MODEL": model_dir.name,
            "EMBEDDING_DEVICE": "cpu",
            "JOB_COMPLETION_INDEX": str(shard),
            "IMPORT_SHARD_COUNT": str(shard_count),
            "CHAT_API_KEY": API_KEY,
            "PARSE_WORKERS": "1",
            "TMPDIR": str(tmp),
            FAULT_MARKER_ENV: str(self.marker),
            **env,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chat_server.bulk_import",
                "run",
                "--knowledge-base",
                kb,
                "--source",
                str(source),
                "--import-id",
                import_id,
            ],
            cwd=CHAT_DIR,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout_s: float = 600) -> tuple[int, list[dict]]:
        out, err = self.proc.communicate(timeout=timeout_s)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines, f"no JSON log lines; stderr: {err[-2000:]}"
        return self.proc.returncode, lines

    def wait_paused(self, timeout_s: float = 300) -> None:
        ends = time.monotonic() + timeout_s
        while time.monotonic() < ends:
            if self.marker.exists():
                return
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.05)
        raise AssertionError("the worker never reached its fault point")

    def kill(self) -> str:
        os.kill(self.proc.pid, signal.SIGKILL)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL
        return out


def file_lines(lines: list[dict]) -> dict[str, dict]:
    return {e["path"]: e for e in lines if e["msg"] == "import file"}


def summary(lines: list[dict]) -> dict:
    (done,) = [e for e in lines if e["msg"] == "import shard finished"]
    return done


def pg_rows(conninfo: str, kb: str) -> tuple[dict[str, int], int, list[int], int]:
    """(chunks per listed file, chunk rows, chunk ids without a vector, vectors)."""
    with psycopg.connect(conninfo) as conn:
        files = dict(
            conn.execute("SELECT file_name, chunks FROM chat_file WHERE kb = %s", (kb,)).fetchall()
        )
        ids = [r[0] for r in conn.execute("SELECT id FROM chat_chunk WHERE kb = %s", (kb,))]
        vec = {r[0] for r in conn.execute(f'SELECT id FROM "{table_name(kb)}"')}
    return files, len(ids), sorted(set(ids) - vec), len(vec)


def assert_each_file_once(conninfo: str, kb: str, expected: dict[str, str]) -> None:
    files, chunk_rows, missing, vectors = pg_rows(conninfo, kb)
    assert sorted(files) == sorted(expected)
    assert chunk_rows == sum(files.values()) == vectors  # no duplicate, no orphan vector
    assert missing == []


# -- the source listing and the shards (pure functions) ------------------------------------------
def test_listing_is_sorted_flat_named_and_reports_what_it_cannot_import(tmp_path):
    root = tmp_path / "src"
    make_corpus(root, 6)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "link-out.txt").symlink_to(outside)
    (root / "link-in.md").symlink_to(root / "part1" / "flat" / "doc001.md")
    (root / "loop").symlink_to(root, target_is_directory=True)
    listing = list_source(root)
    paths = [f.path for f in listing]
    assert paths == sorted(paths) and ".hidden.txt" not in paths
    by_path = {f.path: f for f in listing}
    assert (
        by_path["part1/flat/doc001.md"].file_name == f"part1{PATH_JOINER}flat{PATH_JOINER}doc001.md"
    )
    assert "outside" in by_path["link-out.txt"].problem
    assert by_path["link-in.md"].problem == ""
    assert "not followed" in by_path["loop"].problem
    assert "unsupported type" in by_path["drawing.vsdx"].problem
    assert by_path["broken.pdf"].problem == ""  # found when it is parsed


def test_shards_partition_the_listing_whatever_else_is_listed(tmp_path):
    root = tmp_path / "src"
    make_corpus(root, 40)
    listing = list_source(root)
    shards = [shard_files(listing, s, 3) for s in range(3)]
    names = [f.path for shard in shards for f in shard]
    assert sorted(names) == [f.path for f in listing] and all(shards)
    # A file's shard depends on its own name only: adding files moves no other file.
    (root / "new.txt").write_text("a late file")
    again = shard_files(list_source(root), 1, 3)
    assert [f for f in again if f.path != "new.txt"] == shards[1]
    assert shard_of("new.txt", 3) == shard_of("new.txt", 3)
    with pytest.raises(ValueError, match="IMPORT_SHARD_COUNT"):
        shard_files(listing, 3, 3)


# -- PostgreSQL: parallel writers, kill and re-run -----------------------------------------------
def test_two_shards_in_parallel_fill_a_pg_kb_with_each_file_once(
    tmp_path, pg_conninfo, model_dir, embedder
):
    source = tmp_path / "src"
    expected = make_corpus(source, 40)
    env = {**pg_env(pg_conninfo), "DEFAULT_VS_TYPE": "adb", "IMPORT_BATCH_CHUNKS": "16"}
    workers = [
        Worker(tmp_path, model_dir, KB_ZH, source, "oss-2026", shard, 2, **env) for shard in (0, 1)
    ]
    results = [w.finish() for w in workers]
    assert [code for code, _ in results] == [0, 0]  # failed files do not fail the pod
    sums = [summary(lines) for _, lines in results]
    assert all(s["stored"] > 0 for s in sums)  # both shards wrote
    assert sum(s["listed"] for s in sums) == len(expected) + 2
    assert sum(s["stored"] for s in sums) == len(expected)
    logged = {**file_lines(results[0][1]), **file_lines(results[1][1])}
    assert logged["broken.pdf"]["status"] == "failed" and logged["broken.pdf"]["reason"]
    assert logged["drawing.vsdx"]["status"] == "failed"
    assert_each_file_once(pg_conninfo, KB_ZH, expected)

    service = KnowledgeService(embedder, tmp_path / "kb", pg_conninfo, "adb")
    try:
        hits = service.search(KB_ZH, phrase(17), 1, 2.0)
        assert hits[0].file_name in expected and expected[hits[0].file_name] == phrase(17)
        (status,) = service.import_store(KB_ZH).status(KB_ZH, "oss-2026")
    finally:
        service.close()
    assert status["done"] and status["shards_started"] == 2
    assert status["totals"]["stored"] == len(expected) and status["totals"]["failed"] == 2
    assert status["totals"]["listed"] == len(expected) + 2
    broken = next(f for f in status["failed_files"] if f["path"] == "broken.pdf")
    assert broken["reason"] == logged["broken.pdf"]["reason"] and broken["attempt"] == 1
    assert broken["shard"] == logged["broken.pdf"]["shard"]


@pytest.mark.parametrize(
    "fault", ["import.vectors_written#3", "import.metadata_written#3", "import.batch_stored#2"]
)
def test_a_worker_killed_mid_import_then_rerun_stores_each_file_once_embedding_nothing_twice(
    tmp_path, pg_conninfo, model_dir, embedder, fault
):
    source = tmp_path / "src"
    expected = make_corpus(source, 24)
    env = {**pg_env(pg_conninfo), "DEFAULT_VS_TYPE": "adb", "IMPORT_BATCH_CHUNKS": "8"}
    first = Worker(
        tmp_path, model_dir, "manuals", source, "run1", **env, **{FAULT_PAUSE_ENV: fault}
    )
    first.wait_paused()
    out = first.kill()
    before, _, missing, _ = pg_rows(pg_conninfo, "manuals")
    assert 0 < len(before) < len(expected) and missing == [], out

    code, lines = Worker(tmp_path, model_dir, "manuals", source, "run1", **env).finish()
    assert code == 0
    logged = file_lines(lines)
    stored_again = {e["file_name"] for e in logged.values() if e["status"] == "stored"}
    assert stored_again.isdisjoint(before)  # nothing stored before the kill is embedded again
    unchanged = {e["file_name"] for e in logged.values() if e["status"] == "unchanged"}
    assert unchanged == set(before)
    assert summary(lines)["attempt"] == 2
    assert_each_file_once(pg_conninfo, "manuals", expected)
    service = KnowledgeService(embedder, tmp_path / "kb", pg_conninfo, "adb")
    try:
        (status,) = service.import_store("manuals").status("manuals")
    finally:
        service.close()
    # What the killed attempt stored is still counted as stored, not as unchanged.
    assert status["totals"]["stored"] == len(expected) and status["totals"]["unchanged"] == 0
    assert status["shards"][0]["attempt"] == 2 and status["done"]


def test_sigterm_stops_after_the_stored_batch_and_a_rerun_completes(
    tmp_path, pg_conninfo, model_dir
):
    source = tmp_path / "src"
    expected = make_corpus(source, 24)
    env = {**pg_env(pg_conninfo), "DEFAULT_VS_TYPE": "adb", "IMPORT_BATCH_CHUNKS": "8"}
    pause = {FAULT_PAUSE_ENV: "import.batch_embedded#2"}
    first = Worker(tmp_path, model_dir, "terminated", source, "t", **env, **pause)
    first.wait_paused()
    first.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    first.marker.unlink()  # let it go on: it stores the batch in hand, then stops
    code, lines = first.finish()
    assert code == 143
    assert lines[-1]["msg"] == "import shard stopped by SIGTERM"
    before, _, missing, _ = pg_rows(pg_conninfo, "terminated")
    assert sorted(before) == sorted(
        e["file_name"] for e in file_lines(lines).values() if e["status"] == "stored"
    )
    assert 0 < len(before) < len(expected) and missing == []
    code, lines = Worker(tmp_path, model_dir, "terminated", source, "t", **env).finish()
    assert code == 0 and summary(lines)["unchanged"] == len(before)
    assert_each_file_once(pg_conninfo, "terminated", expected)


def test_a_worker_whose_database_is_down_exits_non_zero(tmp_path, model_dir):
    from tests.stub_llm import free_port

    source = tmp_path / "src"
    make_corpus(source, 2)
    env = {
        "PG_HOST": "127.0.0.1",
        "PG_PORT": str(free_port()),
        "PG_TIMEOUT_S": "1",
        "PG_RETRY_AFTER_S": "1",
        "IMPORT_RETRIES": "2",
        "CHAT_API_URL": f"http://127.0.0.1:{free_port()}",
    }
    code, lines = Worker(tmp_path, model_dir, "down", source, "x", **env).finish()
    assert code == 1
    assert lines[-1]["msg"] == "import stopped: store unavailable"


def test_a_rebuild_of_a_pg_kb_keeps_imported_files_and_embeds_their_chunks_anew(
    tmp_path, pg_conninfo, model_dir, embedder
):
    kb = new_kb_name()
    source = tmp_path / "src"
    expected = make_corpus(source, 8)
    env = {**pg_env(pg_conninfo), "DEFAULT_VS_TYPE": "adb"}
    code, _ = Worker(tmp_path, model_dir, kb, source, "oss-rebuild", **env).finish()
    assert code == 0
    service = KnowledgeService(embedder, tmp_path / "kb", pg_conninfo, "adb")
    try:
        upload = tmp_path / "uploaded.txt"
        upload.write_text("The observatory dome opens at dusk for the comet survey.")
        service.ingest(kb, [IncomingFile.from_path("uploaded.txt", upload)], SplitParams())
        imported = service.imported_files(kb)
        assert sorted(imported) == sorted(expected)  # the uploaded file has its original here
        assert {iid for iid, _ in imported.values()} == {"oss-rebuild"}
        before = {r.file_name: r for r in service.list_files(kb)}
        old_ids = {n: service._meta_for("adb").chunk_ids(kb, n) for n in imported}  # noqa: SLF001
        service.reset_vectors(kb, imported)
        assert sorted(r.file_name for r in service.list_files(kb)) == sorted(imported)
        assert service.reembed_stored(kb, sorted(imported)) == sum(
            before[n].chunks for n in imported
        )
        after = {r.file_name: r for r in service.list_files(kb)}
        assert {n: after[n] for n in imported} == {n: before[n] for n in imported}  # records kept
        meta = service._meta_for("adb")  # noqa: SLF001
        for name in imported:
            assert not set(meta.chunk_ids(kb, name)) & set(old_ids[name])  # new vectors
        assert_each_file_once(pg_conninfo, kb, imported)  # the old vectors are gone
        name = sorted(expected)[3]
        assert service.search(kb, expected[name], 1, 2.0)[0].file_name == name
        with pytest.raises(KnowledgeBaseError, match="bulk-imported .*oss-rebuild"):
            service.file_path(kb, name)
    finally:
        service.close()


# -- faiss: the chat service is the single writer ------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory, model_dir, stub_llm):
    server = ApiProcess(tmp_path_factory.mktemp("api"), model_dir, stub_llm.url)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_faiss_kb_is_filled_through_the_running_chat_api(tmp_path, api, model_dir):
    source = tmp_path / "src"
    expected = make_corpus(source, 20)
    env = {"CHAT_API_URL": api.url, "DEFAULT_VS_TYPE": "faiss", "IMPORT_BATCH_CHUNKS": "16"}
    workers = [Worker(tmp_path, model_dir, KB_ZH, source, "nas-1", s, 2, **env) for s in (0, 1)]
    results = [w.finish() for w in workers]
    assert [code for code, _ in results] == [0, 0], results
    listed = api.http.get("/knowledge_base/list_files", params={"knowledge_base_name": KB_ZH})
    assert sorted(listed.json()["data"]) == sorted(expected)
    found = api.http.post(
        "/knowledge_base/search_docs",
        json={"query": phrase(7), "knowledge_base_name": KB_ZH, "top_k": 1},
    ).json()
    assert expected[found[0]["metadata"]["source"]] == phrase(7)
    status = api.http.get(
        "/knowledge_base/import_status", params={"knowledge_base_name": KB_ZH}
    ).json()["data"]
    (entry,) = status["imports"]
    assert entry["done"] and entry["totals"]["stored"] == len(expected)
    assert {f["path"] for f in entry["failed_files"]} == {"broken.pdf", "drawing.vsdx"}
    assert "pdf" in next(f for f in entry["failed_files"] if f["path"] == "broken.pdf")["reason"]

    code, lines = Worker(tmp_path, model_dir, KB_ZH, source, "nas-1", 0, 1, **env).finish()
    assert code == 0
    again = summary(lines)
    assert again["stored"] == 0 and again["unchanged"] == len(expected)


def create_faiss_kb(http: httpx.Client, kb: str) -> None:
    r = http.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": kb, "vector_store_type": "faiss"},
    )
    assert r.json()["code"] == 200, r.text


def test_imported_files_survive_a_rebuild_say_where_their_original_is_and_go_with_the_kb(
    tmp_path, api, model_dir
):
    kb = "手册 rebuild"
    http = api.http
    create_faiss_kb(http, kb)
    uploaded = "Uploaded notes: the observatory dome opens at dusk for the comet survey."
    r = http.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb},
        files=[("files", ("uploaded.txt", uploaded.encode(), "text/plain"))],
    )
    assert r.json()["code"] == 200, r.text
    source = tmp_path / "src"
    expected = make_corpus(source, 6)
    env = {"CHAT_API_URL": api.url, "DEFAULT_VS_TYPE": "faiss"}
    code, _ = Worker(tmp_path, model_dir, kb, source, "nas-rebuild", **env).finish()
    assert code == 0
    imported = sorted(expected)

    # The original of an imported file is in the import source, and the 404 says so.
    r = http.get(
        "/knowledge_base/download_doc",
        params={"knowledge_base_name": kb, "file_name": imported[0]},
    )
    assert r.status_code == 404
    assert "bulk-imported" in r.json()["msg"] and "nas-rebuild" in r.json()["msg"]
    r = http.get(
        "/knowledge_base/download_doc",
        params={"knowledge_base_name": kb, "file_name": "uploaded.txt"},
    )
    assert r.status_code == 200 and r.content == uploaded.encode()
    # A KB chat names an imported source with its origin, not with a download link to a 404.
    chat = ChatchatClient(api.url, AUTH)
    (event,) = chat.knowledge_base_chat(expected[imported[0]], kb, stream=False, top_k=1)
    (doc,) = event["docs"]
    assert (
        imported[0] in doc and "bulk-imported: 'nas-rebuild'" in doc and "download_doc" not in doc
    )
    listed = http.get("/knowledge_base/imported_files", params={"knowledge_base_name": kb})
    assert sorted(listed.json()["data"]) == imported  # uploaded.txt has its original here
    assert {v["import_id"] for v in listed.json()["data"].values()} == {"nas-rebuild"}
    # With list_files' paging, only of the files of that page (what the web UI shows).
    every = http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    assert every["total"] == len(every["data"]) == 1 + len(imported)
    for offset in range(0, len(every["data"]), 4):
        page = {"knowledge_base_name": kb, "offset": offset, "limit": 4}
        names = http.get("/knowledge_base/list_files", params=page).json()["data"]
        origins = http.get("/knowledge_base/imported_files", params=page).json()["data"]
        assert sorted(origins) == [n for n in names if n != "uploaded.txt"]
    page = {"knowledge_base_name": kb, "name_contains": imported[0]}
    assert list(http.get("/knowledge_base/imported_files", params=page).json()["data"]) == [
        imported[0]
    ]

    # A rebuild re-splits what is on the volume and embeds the imported files' stored chunks.
    events = []
    with http.stream(
        "POST",
        "/knowledge_base/recreate_vector_store",
        json={"knowledge_base_name": kb, "chunk_size": 60, "chunk_overlap": 0},
    ) as r:
        for chunk in r.iter_text(None):
            if chunk.startswith("data: "):
                events.append(json.loads(chunk[6:-2]))
    total = 1 + len(imported)
    assert [(e["finished"], e["total"], e["code"]) for e in events] == [
        (i, total, 200) for i in range(1, total + 1)
    ]
    # The imported files first: once they are re-embedded the KB is the model's (see
    # test_model_change), and the originals are re-ingested after.
    assert [e["doc"] for e in events] == [*imported, "uploaded.txt"]
    assert all("bulk-imported" in e["msg"] and "not re-split" in e["msg"] for e in events[:-1])
    listed = http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    assert sorted(listed["data"]) == sorted(["uploaded.txt", *imported])
    for name in (imported[0], imported[-1]):
        found = http.post(
            "/knowledge_base/search_docs",
            json={"query": expected[name], "knowledge_base_name": kb, "top_k": 1},
        ).json()
        assert found[0]["metadata"]["source"] == name
    docs = http.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": kb, "file_name": "uploaded.txt", "query": ""},
    ).json()
    assert len(docs) > 1 and all(len(d["page_content"]) <= 60 for d in docs)  # re-split

    # A re-run of the import after the rebuild embeds nothing: the records were kept.
    code, lines = Worker(tmp_path, model_dir, kb, source, "nas-rebuild", **env).finish()
    assert code == 0 and summary(lines)["stored"] == 0

    # Deleting the KB forgets its imports: a KB made again under the name starts with none.
    assert http.post("/knowledge_base/delete_knowledge_base", json=kb).json()["code"] == 200
    create_faiss_kb(http, kb)
    status = http.get("/knowledge_base/import_status", params={"knowledge_base_name": kb})
    assert status.json()["data"]["imports"] == []


def test_import_shard_refuses_vectors_of_another_model_or_dimension(api):
    kb = new_kb_name()
    assert api.http.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": kb}
    ).is_success
    base = {"knowledge_base_name": kb, "import_id": "t", "shard": 0, "shard_count": 1}
    start = api.http.post("/knowledge_base/import_shard", json={**base, "phase": "start"})
    assert start.json()["data"] == {"attempt": 1}
    check = api.http.post("/knowledge_base/import_check", json={"knowledge_base_name": kb})
    model, dim = check.json()["data"]["embed_model"], check.json()["data"]["dim"]
    import base64

    one = {"path": "a.txt", "file_name": "a.txt", "fingerprint": "f", "size": 1, "chunks": ["x"]}
    short = {**one, "vectors": base64.b64encode(b"\0" * 4 * (dim - 1)).decode()}
    files = {**base, "phase": "files", "attempt": 1}
    r = api.http.post(
        "/knowledge_base/import_shard", json={**files, "embed_model": model, "files": [short]}
    )
    assert r.status_code == 400 and f"dimension {dim}" in r.json()["msg"]
    right = {**one, "vectors": base64.b64encode(b"\0" * 4 * dim).decode()}
    r = api.http.post(
        "/knowledge_base/import_shard", json={**files, "embed_model": "other", "files": [right]}
    )
    assert r.status_code == 409 and "other" in r.json()["msg"]
    listed = api.http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb})
    assert listed.json()["data"] == []
    r = httpx.post(
        api.url + "/knowledge_base/import_shard",
        json={**files, "embed_model": model, "files": [right]},
        headers={"Authorization": "Bearer wrong"},
    )
    assert r.status_code == 401


def test_a_worker_of_another_model_is_refused_by_a_kb_with_vectors_and_fills_an_empty_one(
    tmp_path, pg_conninfo, model_dir, embedder
):
    other = tmp_path / "models" / "other-minilm"  # the same model under another name
    other.parent.mkdir()
    other.symlink_to(model_dir, target_is_directory=True)
    source = tmp_path / "src"
    expected = make_corpus(source, 3)
    env = {**pg_env(pg_conninfo), "DEFAULT_VS_TYPE": "adb"}
    service = KnowledgeService(embedder, tmp_path / "kb", pg_conninfo, "adb")
    try:
        service.create_kb("full", "adb", None)
        (tmp_path / "a.txt").write_text("The lighthouse keepers log the gulls.")
        one = IncomingFile.from_path("a.txt", tmp_path / "a.txt")
        service.ingest("full", [one], SplitParams())
        service.create_kb("empty", "adb", None)
    finally:
        service.close()

    code, lines = Worker(tmp_path, other, "full", source, "m1", **env).finish()
    assert code == 2
    error = lines[-1]["error"]
    assert "holds vectors of" in error and "recreate_vector_store" in error
    assert sorted(pg_rows(pg_conninfo, "full")[0]) == ["a.txt"]  # nothing of the import stored

    code, lines = Worker(tmp_path, other, "empty", source, "m2", **env).finish()
    assert code == 0 and summary(lines)["stored"] == len(expected)
