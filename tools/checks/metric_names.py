"""Which metric names a PromQL query reads, and which names a server really exports: so that a
dashboard or alert that names a metric nobody exposes fails a test instead of showing nothing.

Queries are parsed with `promql-parser` (the Prometheus grammar); servers' metrics are read from
their `prometheus_client` declarations (parsed, never imported: the images have their own
environments) and expanded the way prometheus_client exposes them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import promql_parser

_CLIENT_TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
_CLIENT_TYPES |= {"Summary": "summary", "Info": "info", "Enum": "gauge"}
# Grafana's own variables that stand where PromQL expects a duration.
_GRAFANA_DURATIONS = re.compile(r"\$__(rate_)?interval|\$__range")


def exposed_names(name: str, kind: str) -> set[str]:
    """The series names prometheus_client exposes for one declared metric."""
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def declared_metrics(source: Path) -> list[tuple[str, str]]:
    """(name, kind) of every prometheus_client metric a Python file declares."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called not in _CLIENT_TYPES:
            continue
        name_arg = node.args[0] if node.args else None
        for keyword in node.keywords:
            if keyword.arg == "name":
                name_arg = keyword.value
        if isinstance(name_arg, ast.Constant) and isinstance(name_arg.value, str):
            found.append((name_arg.value, _CLIENT_TYPES[called]))
    return found


def exported_by_package(package: Path) -> set[str]:
    """Every series name the Python files under `package` export through prometheus_client."""
    names: set[str] = set()
    for source in sorted(package.rglob("*.py")):
        for name, kind in declared_metrics(source):
            names |= exposed_names(name, kind)
    return names


def _walk(node: Any, names: set[str]) -> None:
    kind = type(node).__name__
    if kind == "VectorSelector":
        names.add(node.name or "")  # a selector by labels only names no metric: "" fails checks
        return
    for attr in ("vector_selector", "expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            _walk(child, names)
    for arg in getattr(node, "args", None) or []:
        _walk(arg, names)


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL query selects (Grafana's duration variables read as 5m).
    Raises ValueError naming the query when it does not parse."""
    text = _GRAFANA_DURATIONS.sub("5m", query)
    try:
        tree = promql_parser.parse(text)
    except Exception as exc:  # the parser raises its own error types
        raise ValueError(f"not PromQL: {query!r}: {exc}") from None
    names: set[str] = set()
    _walk(tree, names)
    return names
