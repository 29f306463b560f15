"""The per-request retrieval choices shared by search_docs, knowledge_base_chat and `/v1`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RetrievalFields(BaseModel):
    """Extra request fields (0.2 clients do not send them: the deployment's settings apply)."""

    search_mode: Literal["vector", "keyword", "hybrid"] | None = Field(
        default=None,
        description="vector (as 0.2), keyword (BM25) or hybrid (both, fused by reciprocal "
        "rank fusion); default SEARCH_MODE",
    )
    rerank: bool | None = Field(
        default=None,
        description="rerank the candidates with the cross-encoder (RERANKER_MODEL); "
        "default USE_RERANKER",
    )
