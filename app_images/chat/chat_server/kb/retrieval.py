"""How a search is answered: vector, keyword or hybrid ranking, then an optional reranker.

Pure logic (options, rank fusion) is kept apart from the model that reranks, so that both can
be tested on their own. Scoring of the answer (README "Retrieval"): every hit's `score` stays
the L2 distance between the query's and the chunk's unit vectors, whichever side found it; the
order is the fused (or reranked) one, and the ranks and scores behind it travel beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

log = logging.getLogger(__name__)

SearchMode = Literal["vector", "keyword", "hybrid"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


@dataclass(frozen=True)
class SearchOptions:
    """Per deployment (settings) and per request (extra fields): what ranks the chunks."""

    mode: SearchMode = "vector"
    rerank: bool = False
    # Candidates each side contributes before fusion and reranking (at least top_k).
    candidates: int = 20
    # Reciprocal rank fusion constant: score = sum over sides of 1 / (rrf_k + rank).
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"search_mode={self.mode!r} must be one of {SEARCH_MODES}")
        if self.candidates < 1 or self.rrf_k < 1:
            raise ValueError("search candidates and rrf_k must be at least 1")

    def with_request(self, mode: str | None, rerank: bool | None) -> SearchOptions:
        """These options with what one request asked for (None: the deployment's choice)."""
        return SearchOptions(
            mode=self.mode if mode is None else mode,  # type: ignore[arg-type]
            rerank=self.rerank if rerank is None else rerank,
            candidates=self.candidates,
            rrf_k=self.rrf_k,
        )


def fuse_rrf(rankings: Sequence[Sequence[int]], rrf_k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009): each id scores
    sum(1 / (rrf_k + rank)) over the rankings it is in (rank 1 = best); best first, ties
    broken by the best rank it had, then by the order of the rankings."""
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for side, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
            first_seen.setdefault(item, (rank, side))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


class RerankerMissing(RuntimeError):
    pass


class Reranker:
    """A sentence-transformers cross-encoder from a local directory, read like the embedding
    model (`$MODEL_ROOT/$RERANKER_MODEL`, offline): it scores (query, chunk) pairs."""

    def __init__(self, model_dir: Path, max_length: int = 512, device: str = "cpu") -> None:
        if not (model_dir / "config.json").exists():
            raise RerankerMissing(
                f"reranker model directory {model_dir} has no cross-encoder model (config.json); "
                "set RERANKER_MODEL to a directory under MODEL_ROOT, or leave it empty"
            )
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(
            str(model_dir), device=device, max_length=max_length, local_files_only=True
        )
        self.name = model_dir.name
        self.pairs_scored = 0
        log.info("reranker loaded", extra={"model": str(model_dir), "device": device})

    def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        self.pairs_scored += len(texts)
        scores = self.model.predict(
            [(query, t) for t in texts], batch_size=32, show_progress_bar=False
        )
        return [float(s) for s in scores]
