"""The retrieval benchmark's data and scoring, on a tiny subset, so the code cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from chat_server.kb.service import KnowledgeService

BENCH = Path(__file__).resolve().parent.parent / "bench" / "retrieval_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("retrieval_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scores_follow_the_definitions(bench):
    ranked = [["a", "b"], ["x", "y", "c"], ["q"]]
    scores = bench.score_run(ranked, ["a", "c", "z"])
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["recall@3"] == pytest.approx(2 / 3)
    assert scores["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    with pytest.raises(ValueError):
        bench.score_run([["a"]], ["a", "b"])


def test_hit_files_map_to_passages_once(bench):
    assert bench.passages_of(["p1.txt", "p2.txt", "p1.txt"]) == ["p1", "p2"]


@pytest.mark.parametrize("name", ["zh", "en"])
def test_question_sets_are_labelled_and_large_enough(bench, name):
    data = bench.load_set(bench.SETS[name])
    assert len(data["passages"]) >= 30 and len(data["questions"]) >= 40
    assert {q["answer"] for q in data["questions"]} <= {p["id"] for p in data["passages"]}


def test_a_tiny_subset_runs_every_mode(bench, tmp_path, embedder):
    data = bench.load_set(bench.SETS["zh"])
    keep = {"annual-leave", "printer", "vpn"}
    subset = {
        "passages": [p for p in data["passages"] if p["id"] in keep],
        "questions": [q for q in data["questions"] if q["answer"] in keep][:4],
    }
    service = KnowledgeService(embedder, tmp_path / "kb")
    result = bench.run_set(service, "faiss", subset, repeats=1)
    service.close()
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"vector", "keyword", "hybrid"}  # no reranker here: its row is left out
    assert rows["keyword"]["recall@5"] == 1.0  # each question shares words with its answer
    assert all(0 <= r["mrr"] <= 1 and r["p50_ms"] > 0 for r in rows.values())
    assert "not run: no reranker" in bench.markdown({"zh": result}, "faiss")
