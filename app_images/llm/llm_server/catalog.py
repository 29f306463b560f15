"""The model catalog: a byte-identical copy of the Pulumi program's components/model_catalog.json.

The Docker build context is this directory, so the file is copied here; the repository's tests
prove the copy equals the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal


class UnknownModelError(ValueError):
    """The requested model is not in the catalog."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    directory: str
    kind: Literal["aiacc", "huggingface"]
    family: str
    params_b: float
    context_length: int
    source_model: str | None
    converter_model_name: str | None

    @property
    def is_aiacc(self) -> bool:
        return self.kind == "aiacc"

    def path(self, root: Path) -> Path:
        return root / self.directory


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelEntry]:
    raw = json.loads(resources.files("llm_server").joinpath("model_catalog.json").read_text())
    return {
        name: ModelEntry(
            name=name,
            directory=item["directory"],
            kind=item["kind"],
            family=item["family"],
            params_b=float(item["params_b"]),
            context_length=int(item["context_length"]),
            source_model=item.get("source_model"),
            converter_model_name=item.get("converter_model_name"),
        )
        for name, item in raw["models"].items()
    }


def resolve_model(name: str) -> ModelEntry:
    catalog = load_catalog()
    if name not in catalog:
        raise UnknownModelError(
            f"LLM_MODEL={name!r} is not in the model catalog; known models: "
            + ", ".join(sorted(catalog))
        )
    return catalog[name]
