"""One writer per faiss KB volume: two real processes on one KB directory, and the replica rule."""

from __future__ import annotations

import json
import socket
import time

import pytest

from chat_server.kb.service import KnowledgeService
from chat_server.stores.base import KnowledgeBaseError, KnowledgeBaseLocked
from tests.crash_helpers import PARAMS, Writer, as_files, assert_consistent, paragraph


def test_second_process_refuses_to_write_while_the_first_lives_then_keeps_its_vectors(
    tmp_path, embedder
):
    root = tmp_path / "kb"
    reader = KnowledgeService(embedder, root)  # no faiss KB yet: not the writer
    files = {"a.txt": paragraph("amber"), "c.txt": paragraph("cobalt")}
    spec = {"kb_root": str(root), "vs_type": "faiss", "kb": "docs", "op": "create_ingest"}
    first = Writer(tmp_path, {**spec, "files": files, "per_file": True}, "script.batch_done")
    try:
        first.wait_paused("script.batch_done#1")
        assert [h.file_name for h in reader.search("docs", files["a.txt"], 1, 2.0)] == ["a.txt"]
        first.resume()  # it writes c.txt after this process loaded the index
        first.wait_paused("script.batch_done#2")
        with pytest.raises(KnowledgeBaseLocked, match=f"pid {first.proc.pid}"):
            reader.ingest("docs", as_files(tmp_path, {"b.txt": paragraph("beryl")}), PARAMS)
        with pytest.raises(KnowledgeBaseLocked):
            reader.create_kb("more", "faiss", None)
        assert [h.file_name for h in reader.search("docs", files["c.txt"], 1, 2.0)] == ["c.txt"]
    finally:
        first.kill()
    # The writer is dead: this process takes over, reloading the index the other one wrote.
    reader.ingest("docs", as_files(tmp_path, {"b.txt": paragraph("beryl")}), PARAMS)
    reader.close()
    fresh = KnowledgeService(embedder, root)
    try:
        assert sorted(assert_consistent(fresh, "docs", None)) == ["a.txt", "b.txt", "c.txt"]
    finally:
        fresh.close()


def test_lease_of_a_live_writer_on_another_node_is_respected_until_it_expires(tmp_path, embedder):
    root = tmp_path / "kb"
    root.mkdir()
    lease = root / ".faiss-writer.json"
    holder = {"pid": 1, "host": "chat-other-pod", "token": "x", "heartbeat": time.time()}
    lease.write_text(json.dumps(holder))
    service = KnowledgeService(embedder, root, faiss_lease_ttl_s=30)
    try:
        with pytest.raises(KnowledgeBaseLocked, match="chat-other-pod"):
            service.create_kb("docs", "faiss", None)
        lease.write_text(json.dumps({**holder, "heartbeat": time.time() - 31}))
        service.create_kb("docs", "faiss", None)
        assert json.loads(lease.read_text())["host"] == socket.gethostname()
    finally:
        service.close()


def test_faiss_kb_is_refused_when_the_service_runs_several_replicas(tmp_path, embedder):
    service = KnowledgeService(embedder, tmp_path / "kb", replicas=2)
    try:
        with pytest.raises(KnowledgeBaseError, match="CHAT_REPLICAS=2") as err:
            service.create_kb("docs", "faiss", None)
        assert err.value.status == 409
        assert service.list_kbs() == []
    finally:
        service.close()
