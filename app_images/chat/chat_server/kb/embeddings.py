"""Sentence-transformers embeddings from a local model directory, batched and counted."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class EmbeddingModelMissing(RuntimeError):
    pass


class Embedder:
    """Encodes texts into L2-normalised float32 vectors; counts every text it embeds."""

    def __init__(self, model_dir: Path, batch_size: int = 64) -> None:
        if not (model_dir / "config.json").exists() and not (model_dir / "modules.json").exists():
            raise EmbeddingModelMissing(
                f"embedding model directory {model_dir} has no sentence-transformers model "
                "(set EMBEDDING_MODEL to a directory under MODEL_ROOT)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.name = model_dir.name
        self.batch_size = batch_size
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"embedding model {model_dir} does not state its dimension")
        self.dim = int(dim)
        self.texts_embedded = 0
        self._count_lock = threading.Lock()
        log.info("embedding model loaded", extra={"model": str(model_dir), "dim": self.dim})

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._count_lock:
            self.texts_embedded += len(texts)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
