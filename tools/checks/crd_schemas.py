"""Validation of custom resources (KEDA ScaledObject, Prometheus Operator ServiceMonitor, ...)
against the OpenAPI schemas their projects publish, vendored in `monitoring/crd-schemas/` at
pinned releases (each file names its source, tag and commit).

kubernetes-validate covers the built-in kinds only. The schemas are made strict the way
kubernetes-validate's `strict` is: an object schema that lists its properties refuses others
(the API server would prune them silently), unless it preserves unknown fields.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "crd-schemas"


class SchemaNotVendored(LookupError):
    """No vendored schema for an apiVersion and kind."""


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def vendored() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the vendored document (source, openAPIV3Schema)."""
    found = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        found[(f"{doc['group']}/{doc['version']}", doc["kind"])] = doc
    return found


@cache
def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    doc = vendored().get((api_version, kind))
    if doc is None:
        known = ", ".join(f"{a} {k}" for a, k in vendored())
        raise SchemaNotVendored(f"no schema vendored for {api_version} {kind} (have: {known})")
    schema = _strict(doc["openAPIV3Schema"])
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft7Validator
    )
    return validator_class(schema)


def is_custom(manifest: dict[str, Any]) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in vendored()


def validate(manifest: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or SchemaNotVendored) for an invalid custom resource."""
    _validator(manifest["apiVersion"], manifest["kind"]).validate(manifest)
