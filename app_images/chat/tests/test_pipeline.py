"""The pipelined ingestion (kb/pipeline.py) with the real model, real parse workers, faiss and
a real PostgreSQL+pgvector: order, progress, all-or-nothing, bounded stages, searches served
while an upload is in flight, and kill -9 of a writer in the middle of a multi-window upload."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from chat_server.kb.embeddings import BACKGROUND_NICE, QueryFirst, token_batches
from chat_server.kb.loaders import DocumentError
from chat_server.kb.pipeline import EmbedStage, IngestProgress, ordered_map, windows
from chat_server.kb.service import EMBED_WINDOW_CHUNKS, KnowledgeService
from chat_server.kb.splitter import split_document
from chat_server.kb.spool import IncomingFile
from chat_server.stores.pg_store import vector_copy_binary
from tests.crash_helpers import (
    PARAMS,
    Writer,
    as_files,
    assert_consistent,
    fingerprints,
    paragraph,
    vector_ids,
)

# More chunks than one embedding window: the upload is written in several COPYs.
MANY = {f"f{i:03d}.txt": paragraph(f"topic{i}") for i in range(60)}


@pytest.fixture()
def service(request, vs_type, tmp_path, embedder):
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    svc = KnowledgeService(embedder, tmp_path / "kb", conninfo, vs_type)
    svc.create_kb("docs", vs_type, None)
    svc.conninfo = conninfo  # type: ignore[attr-defined]
    yield svc
    svc.close()


def chunks_of(service: KnowledgeService, text: str) -> list[str]:
    window = service.token_window
    return split_document(text, PARAMS.chunk_size, PARAMS.chunk_overlap, False, window).chunks


def test_many_files_are_stored_in_order_with_one_progress_event_each(service, tmp_path):
    assert sum(len(chunks_of(service, t)) for t in MANY.values()) > EMBED_WINDOW_CHUNKS
    events: list[IngestProgress] = []
    report = service.ingest("docs", as_files(tmp_path, MANY), PARAMS, progress=events.append)
    assert report.embedded_files == list(MANY)
    assert [e.file_name for e in events] == list(MANY)
    assert [e.files_done for e in events] == list(range(1, len(MANY) + 1))
    assert {e.files_total for e in events} == {len(MANY)}
    assert events[-1].chunks_done == report.chunks
    for name, text in MANY.items():
        stored = [c.content for c in service.file_chunks("docs", name)]
        assert stored == chunks_of(service, text), name  # chunk ids follow the text
    assert assert_consistent(service, "docs", service.conninfo) == fingerprints(MANY)
    again: list[IngestProgress] = []
    second = service.ingest("docs", as_files(tmp_path, MANY), PARAMS, progress=again.append)
    assert second.unchanged_files == list(MANY) and second.chunks == 0
    assert all(e.unchanged for e in again) and len(again) == len(MANY)


def test_a_parse_failure_in_the_middle_of_a_big_upload_stores_nothing_of_it(service, tmp_path):
    before = {"kept.txt": paragraph("kept")}
    service.ingest("docs", as_files(tmp_path, before), PARAMS)
    kept_vectors = vector_ids(service, "docs", service.conninfo)
    files = as_files(tmp_path, MANY)
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    files.insert(len(files) - 5, IncomingFile.from_path("broken.docx", broken))
    with pytest.raises(DocumentError, match="broken.docx"):
        service.ingest("docs", files, PARAMS)
    assert [r.file_name for r in service.list_files("docs")] == ["kept.txt"]
    assert vector_ids(service, "docs", service.conninfo) == kept_vectors
    assert service.stored_files("docs") == ["kept.txt"]
    assert assert_consistent(service, "docs", service.conninfo) == fingerprints(before)


def test_searches_are_answered_while_an_upload_is_between_windows(service, tmp_path):
    service.create_kb("other", service.default_vs_type, None)
    service.ingest("other", as_files(tmp_path, {"o.txt": paragraph("osprey")}), PARAMS)
    first_window = threading.Event()
    go_on = threading.Event()

    def hold(event: IngestProgress) -> None:
        if event.files_done == 1:
            first_window.set()
            assert go_on.wait(120)

    upload = threading.Thread(
        target=service.ingest,
        args=("docs", as_files(tmp_path, MANY), PARAMS),
        kwargs={"progress": hold},
    )
    upload.start()
    try:
        assert first_window.wait(120)
        hits = service.search("other", paragraph("osprey"), 1, 2.0)
        assert [h.file_name for h in hits] == ["o.txt"]
        assert service.search("docs", MANY["f000.txt"], 3, 2.0) == []  # nothing shown early
        assert service.list_files("docs") == []
    finally:
        go_on.set()
        upload.join(300)
    assert [h.file_name for h in service.search("docs", MANY["f000.txt"], 1, 2.0)] == ["f000.txt"]


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
@pytest.mark.parametrize("step", ["ingest.vectors_written", "ingest.metadata_written"])
def test_kill_9_mid_multi_window_upload_leaves_the_kb_consistent(
    request, vs_type, step, tmp_path, embedder
):
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    root = tmp_path / "kb"
    before = {"a.txt": paragraph("alpha")}
    first = KnowledgeService(embedder, root, conninfo, vs_type)
    first.create_kb("docs", vs_type, None)
    first.ingest("docs", as_files(tmp_path, before), PARAMS)
    first.close()
    spec = {"kb_root": str(root), "conninfo": conninfo, "vs_type": vs_type, "kb": "docs"}
    writer = Writer(tmp_path, {**spec, "op": "ingest", "files": MANY}, pause_at=step)
    writer.wait_paused(step)
    writer.kill()
    restarted = KnowledgeService(embedder, root, conninfo, vs_type)
    try:
        # PostgreSQL commits the whole upload at once; faiss's metadata names it at step 3.
        committed = vs_type == "faiss" and step == "ingest.metadata_written"
        expected = {**before, **MANY} if committed else before
        assert assert_consistent(restarted, "docs", conninfo) == fingerprints(expected)
    finally:
        restarted.close()


def test_ordered_map_keeps_order_bounds_lookahead_and_raises_in_place():
    pulled = []

    def source():
        for i in range(50):
            pulled.append(i)
            yield i

    def work(i: int) -> int:
        if i == 30:
            raise ValueError("item 30")
        return i * i

    got = []
    results = ordered_map(work, source(), workers=3, ahead=5)
    with pytest.raises(ValueError, match="item 30"):
        for r in results:
            got.append(r)
            assert len(pulled) <= len(got) + 5
    assert got == [i * i for i in range(30)]


def test_embed_stage_pulls_a_bounded_number_of_items_ahead_of_a_stalled_writer():
    pulled = []
    pulled_more = threading.Condition()

    def source():
        for i in range(10_000):
            with pulled_more:
                pulled.append(i)
                pulled_more.notify_all()
            yield [f"text {i}"] * 4

    def encode(texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 8), dtype=np.float32)

    with EmbedStage(source(), lambda item: item, encode, window_chunks=16, queue_size=2) as stage:
        first = next(iter(stage))
        assert len(first.items) == 4 and first.vectors.shape == (16, 8)
        # The writer holds on: the stage fills its queue, then blocks on it.
        with pulled_more:
            pulled_more.wait_for(lambda: len(pulled) >= 4 * 3, timeout=60)
    # 1 window taken + 2 queued + 1 being put: never the 10,000 items of the source.
    assert len(pulled) <= 4 * 4


def test_windows_close_on_whole_items():
    groups = list(windows([3, 1, 5, 2, 2, 9, 1], size=lambda n: n, window=4))
    assert groups == [[3, 1], [5], [2, 2], [9], [1]]


def test_token_batches_group_like_token_counts_within_both_bounds():
    lengths = [40, 230, 38, 200, 41, 900, 39, 220, 42]
    batches = token_batches(lengths, max_batch=3, max_tokens=480)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each text once
    assert batches[0] == [5]  # longer than the budget: alone
    for batch in batches:
        assert len(batch) <= 3
        longest = max(lengths[i] for i in batch)
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        assert len(batch) == 1 or len(batch) * longest <= 480
    assert [[lengths[i] for i in b] for b in batches] == [
        [900],
        [230, 220],
        [200, 42],
        [41, 40, 39],
        [38],
    ]


def test_token_batches_pad_a_mixed_language_corpus_far_less_than_character_order(embedder):
    # English chunks of 180-255 characters are ~40-60 tokens, Chinese ones of 100-250 about one
    # token a character: sorted by characters they interleave, and a batch pads to its longest.
    english = [(paragraph(c) * 3)[: 180 + 5 * i] for i, c in enumerate("abcdefghijklmnop")]
    chinese = [("知识库检索增强生成" * 40)[: 100 + 10 * i] for i in range(16)]
    texts = english + chinese
    lengths = [len(i) for i in embedder.model.tokenizer(texts)["input_ids"]]

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    by_chars = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    char_batches = [by_chars[i : i + 8] for i in range(0, len(texts), 8)]
    by_tokens = token_batches(lengths, max_batch=8, max_tokens=10**9)
    assert padded(by_tokens) < 0.8 * padded(char_batches)
    ours = embedder.batches(texts)  # the embedder's own cut: every text once, within its bounds
    assert sorted(i for b in ours for i in b) == list(range(len(texts)))
    assert all(
        len(b) == 1 or len(b) * max(lengths[i] for i in b) <= embedder.batch_tokens for b in ours
    )


def test_background_embedding_runs_at_low_priority_and_matches_query_encoding(embedder):
    tid = embedder._background.submit(threading.get_native_id).result()  # noqa: SLF001
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[16]) == BACKGROUND_NICE  # field 19: nice
    texts = [paragraph(t)[: 40 * (i + 1)] for i, t in enumerate("abcdefghij")]
    background = embedder.encode_background(texts)
    assert np.allclose(background, embedder.encode(texts), atol=1e-5)
    one_by_one = np.stack([embedder.model.encode(t, normalize_embeddings=True) for t in texts])
    assert np.allclose(background, one_by_one, atol=1e-5)  # batching changes no vector


def test_a_background_batch_waits_for_a_query_in_progress():
    gate = QueryFirst()
    started = threading.Event()
    finished = threading.Event()

    def background() -> None:
        started.set()
        gate.wait_idle()
        finished.set()

    with gate.query():
        thread = threading.Thread(target=background)
        thread.start()
        assert started.wait(10)
        assert not finished.wait(0.2)
    thread.join(10)
    assert finished.is_set()


def test_vector_copy_binary_is_what_pgvector_reads(pg_conninfo):
    import psycopg

    ids = np.array([5, 9], dtype=np.int64)
    vectors = np.array([[0.5, -1.25, 3.0], [1e-3, 0.0, 2.5]], dtype=np.float32)
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE v (id BIGINT PRIMARY KEY, embedding vector(3))")
        with (
            conn.cursor() as cur,
            cur.copy("COPY v (id, embedding) FROM STDIN (FORMAT BINARY)") as c,
        ):
            c.write(vector_copy_binary(ids, vectors))
        rows = conn.execute("SELECT id, embedding::text FROM v ORDER BY id").fetchall()
    assert rows == [(5, "[0.5,-1.25,3]"), (9, "[0.001,0,2.5]")]


def test_torch_threads_follow_embedding_threads_else_the_cpus_this_process_may_use(model_dir):
    import joblib
    import torch

    from chat_server.kb.embeddings import Embedder, cpu_threads

    # joblib.cpu_count reads the cgroup CPU quota and the affinity mask, not the node's cores.
    assert cpu_threads(None) == joblib.cpu_count() <= len(os.sched_getaffinity(0))
    assert cpu_threads(3) == 3
    before = torch.get_num_threads()
    try:
        one = Embedder(model_dir, device="cpu", threads=1)
        assert one.threads == 1
        # The ingestion thread's torch team follows it too (set_num_threads is process-wide).
        assert one._background.submit(torch.get_num_threads).result() == 1  # noqa: SLF001
    finally:
        torch.set_num_threads(before)


HEAP_PROBE = """
import ctypes, random, sys
from pathlib import Path
from chat_server.kb.embeddings import Embedder

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

embedder = Embedder(Path(sys.argv[1]), device="cpu", threads=1)
rng = random.Random(7)
words = "cluster node pod storage vector model 集群 节点 容器 检索".split()
for _ in range(8):  # batches of many shapes, as token-count batching makes them
    embedder.encode([" ".join(rng.choice(words) for _ in range(rng.randint(3, 120)))
                     for _ in range(48)])
before = rss_mib()
ctypes.CDLL(None).malloc_trim(0)  # glibc's own, not the embedder's: it must not share a bug
print(before - rss_mib())
"""


def test_bulk_cpu_encodes_hand_freed_heap_back_so_rss_does_not_grow_with_the_corpus(model_dir):
    """CPU torch's batches of ever new shapes fragment glibc's heap: untrimmed, a further
    malloc_trim after 8 such encodes in a fresh process hands back ~180 MiB, and a worker's RSS
    grew with every file it embedded (README "Ingestion at scale", memory). The embedder trims
    after each batch, so nothing is left to hand back."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", HEAP_PROBE, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    released = float(out.stdout.strip().splitlines()[-1])
    assert released < 16, f"{released:.0f} MiB of freed heap was still held after the encodes"


def test_counting_tokens_on_other_threads_never_breaks_a_concurrent_encode(embedder):
    """Uploads split and batch (counting tokens) on their own threads while another upload or
    a search encodes. With one tokenizer for both, counting's settings (no padding) reached a
    concurrent encode's batch half-way: "ValueError: Unable to create tensor", a 500 for the
    upload (seen in the scale bench; this loop hit it within 10 s before the fix)."""
    import time

    texts = ["short text", "a much longer text with many more words in it " * 5, "mid words"]
    expected = embedder.encode(texts)
    window = embedder.token_window()
    counts = window.count(texts)
    errors: list[BaseException] = []
    stop = time.monotonic() + 8

    def loop(work) -> None:
        while time.monotonic() < stop and not errors:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

    def encode() -> None:
        np.testing.assert_allclose(embedder.encode(texts), expected, atol=1e-5)

    def count() -> None:
        assert window.count(texts) == counts
        embedder.batches(texts * 20)
        embedder.token_counts(texts)

    threads = [threading.Thread(target=loop, args=(w,)) for w in (encode, encode, count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, repr(errors[0])
