"""kill -9 of a real writer process at every step of a write, then a restart: each file is
either listed and found by search, or not listed and embedded again on re-upload."""

from __future__ import annotations

import psycopg
import pytest

from chat_server.kb.service import KnowledgeService
from tests.crash_helpers import (
    PARAMS,
    Writer,
    as_files,
    assert_consistent,
    fingerprints,
    paragraph,
)

A1, B1, A2, C1 = (paragraph(t) for t in ("alpha", "bravo", "alphanew", "charlie"))
BEFORE = {"a.txt": A1, "b.txt": B1}
UPLOAD = {"a.txt": A2, "c.txt": C1}  # one update, one new file, in one request
AFTER = {"a.txt": A2, "b.txt": B1, "c.txt": C1}
KB = "产品手册 docs"

# (op, files of the op, step, what is listed after the restart: faiss, PostgreSQL)
CASES = [
    ("ingest", UPLOAD, "ingest.vectors_written", BEFORE, BEFORE),
    ("ingest", UPLOAD, "faiss.tmp_written#1", BEFORE, None),
    ("ingest", UPLOAD, "ingest.content_written", BEFORE, BEFORE),
    ("ingest", UPLOAD, "ingest.metadata_written", AFTER, BEFORE),
    ("ingest", UPLOAD, "faiss.tmp_written#2", AFTER, None),
    ("delete", {"b.txt": B1}, "delete.metadata_deleted", {"a.txt": A1}, BEFORE),
    ("delete", {"b.txt": B1}, "faiss.tmp_written", {"a.txt": A1}, None),
    ("rebuild", {}, "rebuild.metadata_deleted", {}, BEFORE),
    ("rebuild", {}, "ingest.metadata_written#1", {"a.txt": A1}, {}),
    ("delete_kb", {}, "delete_kb.metadata_deleted", None, BEFORE),
]
PARAMS_LIST = [
    pytest.param(vs, op, files, step, listed[0 if vs == "faiss" else 1], id=f"{vs}-{op}-{step}")
    for op, files, step, *listed in CASES
    for vs in ("faiss", "adb")
    if not (vs == "adb" and step.startswith("faiss."))
]


def open_service(embedder, kb_root, conninfo, vs_type) -> KnowledgeService:
    return KnowledgeService(embedder, kb_root, conninfo, vs_type, pg_retry_after_s=1)


@pytest.fixture()
def setup_kb(request, tmp_path, embedder):
    """A KB holding a.txt and b.txt, written by this process, which then lets go of it."""

    def make(vs_type: str) -> tuple[str | None, str]:
        conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
        service = open_service(embedder, tmp_path / "kb", conninfo, vs_type)
        # A display name (not an identifier): its directory and table are derived ids.
        service.create_kb(KB, vs_type, None)
        service.ingest(KB, as_files(tmp_path, BEFORE), PARAMS)
        service.close()
        return conninfo, KB

    return make


@pytest.mark.parametrize(("vs_type", "op", "files", "step", "expected"), PARAMS_LIST)
def test_kill_9_at_each_write_step_leaves_files_searchable_or_absent(
    setup_kb, tmp_path, embedder, vs_type, op, files, step, expected
):
    conninfo, kb = setup_kb(vs_type)
    spec = {
        "kb_root": str(tmp_path / "kb"),
        "conninfo": conninfo,
        "vs_type": vs_type,
        "kb": kb,
        "op": op,
        "files": files,
    }
    writer = Writer(tmp_path, spec, pause_at=step)
    writer.wait_paused(step)
    writer.kill()

    service = open_service(embedder, tmp_path / "kb", conninfo, vs_type)  # the restart
    try:
        if expected is None:
            assert kb not in [k.name for k in service.list_kbs()]
            service.create_kb(kb, vs_type, None)  # nothing of the old one comes back
            assert service.list_files(kb) == []
            assert assert_consistent(service, kb, conninfo) == {}
            return
        listed = assert_consistent(service, kb, conninfo)
        assert listed == fingerprints(expected)
        # Re-upload of everything: what is not listed with this content is embedded again.
        final = {**BEFORE, **files} if op == "ingest" else dict(BEFORE)
        if op == "delete":
            final = {n: t for n, t in BEFORE.items() if n not in files}
        report = service.ingest(kb, as_files(tmp_path, final), PARAMS)
        assert sorted(report.unchanged_files) == sorted(
            n for n, fp in fingerprints(final).items() if listed.get(n) == fp
        )
        assert assert_consistent(service, kb, conninfo) == fingerprints({**expected, **final})
    finally:
        service.close()


def test_database_failure_mid_ingest_rolls_vectors_and_metadata_back(setup_kb, tmp_path, embedder):
    conninfo, kb = setup_kb("adb")
    spec = {"kb_root": str(tmp_path / "kb"), "conninfo": conninfo, "vs_type": "adb"}
    writer = Writer(
        tmp_path,
        {**spec, "kb": kb, "op": "ingest", "files": UPLOAD},
        pause_at="ingest.metadata_written",
    )
    writer.wait_paused("ingest.metadata_written")
    with psycopg.connect(conninfo, autocommit=True) as conn:  # the database drops the writer
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    writer.resume()
    code, out = writer.finish()
    assert code == 4 and "DatabaseUnavailable" in out, out

    service = open_service(embedder, tmp_path / "kb", conninfo, "adb")
    try:
        assert assert_consistent(service, kb, conninfo) == fingerprints(BEFORE)
    finally:
        service.close()
