"""Parsing in worker processes: killed at the hard deadline, capped in memory, re-spawned."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chat_server.kb.embeddings import BACKGROUND_NICE
from chat_server.kb.loaders import DocumentError, ParseLimits, load_text
from chat_server.kb.parse_pool import ParsePool
from tests.slow_docs import one_page_pdf


@pytest.fixture()
def small_files(tmp_path):
    files = {}
    for i in range(6):
        path = tmp_path / f"doc{i}.txt"
        path.write_text(f"document number {i} about otters and rivers", encoding="utf-8")
        files[path] = path.read_text(encoding="utf-8")
    return files


def parse_all(pool: ParsePool, files: dict) -> dict:
    with ThreadPoolExecutor(4) as threads:
        texts = threads.map(lambda p: pool.parse(p.name, p), files)
        return dict(zip(files, texts, strict=True))


def test_a_document_stuck_in_one_parser_call_is_killed_and_the_pool_recovers(tmp_path, small_files):
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(one_page_pdf(60_000))
    # The same document parses, given time: it is refused for the deadline, not for itself.
    assert load_text("slow.pdf", slow).startswith("word word")
    pool = ParsePool(ParseLimits(deadline_s=0.2), workers=2, kill_grace_s=0.3)
    try:
        with pytest.raises(DocumentError) as err:
            pool.parse("slow.pdf", slow)
        assert err.value.status == 413
        assert "'slow.pdf' took longer than 0.2s" in err.value.message
        assert "PARSE_DEADLINE_S + PARSE_KILL_GRACE_S" in err.value.message
        # Fresh workers take the next documents, several at once (pipelined ingestion).
        assert parse_all(pool, small_files) == small_files
    finally:
        pool.close()


def test_a_document_over_the_memory_limit_is_413_and_the_next_one_parses(tmp_path, small_files):
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:
        for _ in range(100):
            f.write(b"word " * 200_000)  # 100 MB of text, decoded and normalised in full
    pool = ParsePool(workers=2, memory_bytes=200 * 1024 * 1024)
    try:
        with pytest.raises(DocumentError) as err:
            pool.parse("huge.txt", huge)
        assert err.value.status == 413
        assert "'huge.txt' needs more than 209715200 bytes" in err.value.message
        assert "PARSE_MAX_MEMORY_BYTES" in err.value.message
        assert parse_all(pool, small_files) == small_files
    finally:
        pool.close()


def test_a_worker_killed_from_outside_is_replaced(tmp_path, small_files):
    pool = ParsePool(workers=1)
    try:
        first = next(iter(small_files))
        assert pool.parse(first.name, first) == small_files[first]
        (worker,) = pool._idle
        worker.proc.kill()
        worker.proc.wait()
        assert parse_all(pool, small_files) == small_files
        (replacement,) = pool._idle
        assert replacement.proc.pid != worker.proc.pid
    finally:
        pool.close()


def test_workers_run_at_the_background_priority_of_ingestion(small_files):
    pool = ParsePool(workers=1)
    try:
        first = next(iter(small_files))
        assert pool.parse(first.name, first) == small_files[first]
        (worker,) = pool._idle
        stat = Path(f"/proc/{worker.proc.pid}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[16]) == BACKGROUND_NICE  # field 19: nice
    finally:
        pool.close()
