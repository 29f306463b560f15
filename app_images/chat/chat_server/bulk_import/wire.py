"""The body of `POST /knowledge_base/import_shard`: a shard's results handed to the service.

Vectors travel as base64 of little-endian float32, row-major (as `/v1/embeddings` sends them
with `encoding_format=base64`); their shape is checked against the chunks and the model's
dimension before anything is stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

IMPORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class HandedFile(BaseModel):
    path: str = Field(max_length=4096)
    file_name: str = Field(max_length=255)
    fingerprint: str = Field(max_length=200)
    size: int = Field(ge=0)
    chunks: list[str] = Field(min_length=1)
    vectors: str  # base64, len(chunks) x dim float32 little-endian

    def matrix(self, dim: int) -> np.ndarray:
        try:
            raw = base64.b64decode(self.vectors, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"file {self.file_name!r}: vectors are not base64 ({exc})") from exc
        expected = len(self.chunks) * dim * 4
        if len(raw) != expected:
            raise ValueError(
                f"file {self.file_name!r}: {len(self.chunks)} chunks of dimension {dim} need "
                f"{expected} bytes of float32 vectors, got {len(raw)}"
            )
        vectors = np.frombuffer(raw, dtype="<f4").reshape(len(self.chunks), dim)
        if not np.isfinite(vectors).all():
            raise ValueError(f"file {self.file_name!r}: vectors contain NaN or infinity")
        return vectors.astype(np.float32)


class HandedOutcome(BaseModel):
    path: str = Field(max_length=4096)
    file_name: str = Field(default="", max_length=1024)
    status: Literal["unchanged", "failed"]
    reason: str = Field(default="", max_length=4000)


class ImportShard(BaseModel):
    knowledge_base_name: str
    import_id: str = Field(pattern=IMPORT_ID_PATTERN)
    shard: int = Field(ge=0)
    shard_count: int = Field(ge=1, le=10_000)
    # start: register the shard (answers its attempt); files: store; done: mark it finished.
    phase: Literal["start", "files", "done"]
    listed: int = Field(default=0, ge=0)
    attempt: int = Field(default=0, ge=0)
    embed_model: str = ""
    files: list[HandedFile] = Field(default_factory=list)
    outcomes: list[HandedOutcome] = Field(default_factory=list)


class ImportCheck(BaseModel):
    knowledge_base_name: str
    file_names: list[str] = Field(default_factory=list, max_length=2000)


def encode_vectors(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode()


def wire_size(chunks: list[str], dim: int) -> int:
    """Bytes one file adds to an import_shard body (chunk texts as JSON, vectors in base64),
    plus a margin for its other fields; known before the file is embedded."""
    vector_bytes = len(chunks) * dim * 4
    return len(json.dumps(chunks)) + 4 * ((vector_bytes + 2) // 3) + 1024
