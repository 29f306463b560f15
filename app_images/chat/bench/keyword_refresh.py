"""Keyword search on a large knowledge base while it is written: the BM25 index's rebuild.

bm25s has no incremental update, so every change to a KB means a whole new BM25 matrix. This
bench fills a real SQLite metadata store (the faiss KBs' store) with the paragraphs of
`--docs` generated documents (`ingest_scale.document`: Chinese and English, realistic lengths),
builds the keyword index, then, for each refresh policy, writes one more document every
`--write-every` seconds while a client searches by keywords without pause, and reports:

- search latency p50 / p95 / max, and p95 as a ratio to idle search p95 measured in the
  same run (no writes, index current);
- staleness: for each write, the time until a search was answered from an index that held it;
- the first build (every chunk tokenized) and a rebuild (tokens cached) of the whole KB;
- the memory of the token cache, per chunk, as token ids (what the index keeps) against the
  Python string lists it kept before, measured with tracemalloc on a sample.

Policies: `sync` (every search that finds the store changed rebuilds first and waits: the
index before 2026-12-03, and still the rule below SYNC_REBUILD_CHUNKS) and `background` (the
rebuild on a thread of its own, searches answered from the index they have meanwhile).

Run: app_images/chat/.venv/bin/python app_images/chat/bench/keyword_refresh.py --docs 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from ingest_scale import document, percentile  # noqa: E402

from chat_server.kb.keyword import ChunkSource, KeywordIndexes, tokenize  # noqa: E402
from chat_server.stores.base import FileRecord, KnowledgeBase, MetaStore  # noqa: E402
from chat_server.stores.faiss_store import sqlite_meta  # noqa: E402

KB = "bench"
QUERIES = ["manual service audit", "model knowledge", "审计 服务", "知识库 文档", "用户 数据 指标"]


def paragraphs(seed: int, i: int) -> tuple[str, list[str]]:
    name, body = document(seed, i)
    return name, [p for p in body.decode().split("\n\n") if p.strip()]


def write_doc(meta: MetaStore, seed: int, i: int) -> int:
    name, chunks = paragraphs(seed, i)
    ids = meta.reserve_ids(KB, len(chunks))
    meta.replace_file(
        KB, FileRecord(name, f"fp{i}", sum(map(len, chunks)), len(chunks)), ids, chunks
    )
    return len(chunks)


def source(meta: MetaStore) -> ChunkSource:
    return ChunkSource.from_store(meta, KB)


def timed_searches(
    keywords: KeywordIndexes, meta: MetaStore, seconds: float
) -> tuple[list[float], list[tuple[float, int]]]:
    """Searches without pause: their latencies, and when each was answered with how many
    chunks the index that answered it held."""
    latencies, seen = [], []
    entry = keywords._entry(KB)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        keywords.search(KB, QUERIES[n % len(QUERIES)], 20, source(meta))
        latencies.append(time.perf_counter() - started)
        built = keywords._built_signature(entry)
        seen.append((time.monotonic(), built[0] if built else 0))
        n += 1
    return latencies, seen


def wait_idle(keywords: KeywordIndexes) -> None:
    """Until no background rebuild runs."""
    entry = keywords._entry(KB)
    while True:
        with entry.lock:
            if not entry.rebuilding:
                return
        time.sleep(0.05)


def summary_ms(latencies: list[float]) -> dict[str, float]:
    return {
        "n": len(latencies),
        "p50": round(percentile(latencies, 0.5) * 1000, 2),
        "p95": round(percentile(latencies, 0.95) * 1000, 2),
        "max": round(max(latencies) * 1000, 2),
    }


def token_cache_bytes(texts: list[str]) -> dict[str, float]:
    """Bytes per chunk of the token cache: lists of str (before) vs int32 token ids (now)."""
    tokenize("预热 warm-up")  # jieba's dictionary loads on the first call: not the cache's
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    as_str = [tokenize(t) for t in texts]
    str_bytes = tracemalloc.get_traced_memory()[0] - base
    vocab: dict[str, int] = {}
    mark = tracemalloc.get_traced_memory()[0]
    as_ids = [
        np.array([vocab.setdefault(w, len(vocab)) for w in t], dtype=np.int32) for t in as_str
    ]
    id_bytes = tracemalloc.get_traced_memory()[0] - mark
    tracemalloc.stop()
    del as_ids
    return {
        "str_lists_per_chunk": round(str_bytes / len(texts), 1),
        "token_ids_per_chunk": round(id_bytes / len(texts), 1),
        "ratio": round(str_bytes / id_bytes, 1),
    }


def run_policy(
    name: str,
    keywords: KeywordIndexes,
    meta: MetaStore,
    seed: int,
    next_doc: int,
    args: argparse.Namespace,
) -> tuple[dict[str, object], int]:
    """Writes and searches under one policy; `keywords` holds the KB's tokens already."""
    keywords.sync_rebuild_chunks = 10**12 if name == "sync" else 0
    keywords.search(KB, QUERIES[0], 20, source(meta))
    wait_idle(keywords)
    builds = keywords.builds
    idle, _ = timed_searches(keywords, meta, args.idle_seconds)
    writes: list[tuple[float, int]] = []  # (commit time, chunk count after it)
    stop = threading.Event()

    def writer(start: int) -> None:
        i = start
        while not stop.wait(args.write_every):
            write_doc(meta, seed, i)
            writes.append((time.monotonic(), meta.chunk_signature(KB)[0]))
            i += 1

    thread = threading.Thread(target=writer, args=(next_doc,), daemon=True)
    thread.start()
    latencies, seen = timed_searches(keywords, meta, args.seconds)
    stop.set()
    thread.join()
    lags = []
    for at, count in writes:
        found = next((t for t, c in seen if t >= at and c >= count), None)
        if found is not None:
            lags.append(found - at)
    result = {
        "idle_ms": summary_ms(idle),
        "during_writes_ms": summary_ms(latencies),
        "p95_vs_idle": round(percentile(latencies, 0.95) / percentile(idle, 0.95), 2),
        "writes": len(writes),
        "writes_seen": len(lags),
        "staleness_s": {
            "p50": round(percentile(lags, 0.5), 2) if lags else None,
            "max": round(max(lags), 2) if lags else None,
        },
        "rebuilds": keywords.builds - builds,
    }
    wait_idle(keywords)
    return result, next_doc + len(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=60.0, help="searching while writing")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--write-every", type=float, default=0.5, help="seconds between writes")
    parser.add_argument("--policies", nargs="+", default=["sync", "background"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    results: dict[str, object] = {"docs": args.docs, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="keyword-refresh-") as tmp:
        meta = sqlite_meta(Path(tmp))
        meta.create_kb(KnowledgeBase(KB, "faiss", "bench"))
        chunks = sum(write_doc(meta, args.seed, i) for i in range(args.docs))
        results["chunks"] = chunks
        sample = [
            t
            for i in range(0, args.docs, max(1, args.docs // 500))
            for t in paragraphs(args.seed, i)[1]
        ]
        results["token_cache_bytes"] = token_cache_bytes(sample)

        keywords = KeywordIndexes()
        started = time.perf_counter()
        keywords.search(KB, QUERIES[0], 20, source(meta))
        results["first_build_s"] = round(time.perf_counter() - started, 2)
        write_doc(meta, args.seed, args.docs)
        with keywords._entry(KB).build_lock:
            started = time.perf_counter()
            keywords._build_entry(keywords._entry(KB), source(meta))
        results["rebuild_s"] = round(time.perf_counter() - started, 2)
        next_doc = args.docs + 1
        for name in args.policies:
            results[name], next_doc = run_policy(name, keywords, meta, args.seed, next_doc, args)
            print(json.dumps({name: results[name]}), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
