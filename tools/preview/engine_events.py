"""Summarise the real engine's preview events into the `PlanDiff` the offline diff produces, so
the same danger rules and the same report apply to both.

Summarising: each `ResourcePreEvent` carries `StepEventMetadata` (op, urn, type, old/new state,
`diffs`, `keys`, `detailed_diff`). A replacement arrives as several steps for one URN
(`create-replacement`, `replace`, `delete-replaced`), folded into one "replace". The Python SDK
often leaves `detailed_diff` empty (the CLI only fills it for providers that send one), so the
changed properties come from `diffs` (top-level keys) and the replace-causing ones from `keys`;
`detailed_diff` paths are used when present because they are finer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.offline.wire import decode_wire, mask_secrets
from tools.preview.plan_diff import (
    STATEFUL_TYPES,
    Op,
    PlanDiff,
    PropertyChange,
    ResourceChange,
    format_path,
    in_import,
    in_llm_workload,
    property_changes,
)

_REPLACE_STEPS = {
    "replace",
    "create-replacement",
    "delete-replaced",
    "discard-replaced",
    "import-replacement",
    "read-replacement",
}
_OP_OF_STEP: dict[str, Op] = {"create": "create", "update": "update", "delete": "delete"}

_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([^.\[]+)')


def parse_property_path(path: str) -> list[str | int]:
    """The engine's property paths (`spec.containers[0].image`,
    `metadata.annotations["chatchat.io/model"]`) as keys and indexes."""
    parts: list[str | int] = []
    for quoted, index, plain in _PATH_TOKEN.findall(path):
        parts.append(int(index) if index else (quoted.replace('\\"', '"') if quoted else plain))
    return parts


def _lookup(inputs: Any, parts: list[str | int]) -> Any:
    node = inputs
    for key in parts:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def summarise(events: Iterable[Any], stack: str = "engine") -> PlanDiff:
    """Per-resource summary of the preview's `ResourcePreEvent`s (pulumi.automation EngineEvent
    objects). Same-steps are counted as unchanged; provider and stack resources are skipped."""
    steps: dict[str, list[Any]] = {}
    order: list[str] = []
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        meta = pre.metadata
        if meta.type.startswith("pulumi:providers:") or meta.type == "pulumi:pulumi:Stack":
            continue
        if meta.urn not in steps:
            order.append(meta.urn)
        steps.setdefault(meta.urn, []).append(meta)

    changes: list[ResourceChange] = []
    unchanged = 0
    for urn in order:
        metas = steps[urn]
        ops = {str(getattr(m.op, "value", m.op)) for m in metas}
        op: Op | None
        if ops & _REPLACE_STEPS:
            op = "replace"
        else:
            op = next((_OP_OF_STEP[o] for o in ("delete", "create", "update") if o in ops), None)
        if op is None:  # same, read, refresh
            unchanged += 1
            continue
        meta = next((m for m in metas if str(getattr(m.op, "value", m.op)) == "replace"), metas[0])
        changes.append(_resource_change(op, meta, metas))
    return PlanDiff(
        before=f"{stack} (state)",
        after=f"{stack} (engine preview)",
        changes=changes,
        unchanged=unchanged,
    )


def _resource_change(op: Op, meta: Any, metas: list[Any]) -> ResourceChange:
    keys: set[str] = set()
    diffs: list[str] = []
    detailed: dict[str, Any] = {}
    for m in metas:
        keys.update(m.keys or [])
        diffs += [d for d in (m.diffs or []) if d not in diffs]
        detailed.update(m.detailed_diff or {})
    # state inputs carry secrets in the wire format; decode them so they compare and mask
    old_inputs = decode_wire(dict(meta.old.inputs or {})) if meta.old else {}
    new_inputs = decode_wire(dict(meta.new.inputs or {})) if meta.new else {}
    props: list[PropertyChange] = []
    if detailed:
        for key, pdiff in detailed.items():
            kind = str(getattr(pdiff.diff_kind, "value", pdiff.diff_kind))
            parts = parse_property_path(key)
            old, new = _lookup(old_inputs, parts), _lookup(new_inputs, parts)
            props.append(
                PropertyChange(
                    format_path(parts),
                    mask_secrets(old),
                    mask_secrets(new),
                    kind.endswith("-replace") or parts[0] in keys,
                )
            )
    elif op in ("update", "replace"):
        for key in diffs or sorted(keys):
            found = property_changes(old_inputs.get(key), new_inputs.get(key), (key,))
            # the engine saw a change the inputs do not show (an output, an unknown): keep the key
            found = found or [
                (key, mask_secrets(old_inputs.get(key)), mask_secrets(new_inputs.get(key)))
            ]
            props += [PropertyChange(p, o, n, key in keys) for p, o, n in found]
    state = meta.new or meta.old
    name = meta.urn.rsplit("::", 1)[-1]
    return ResourceChange(
        op=op,
        urn=meta.urn,
        type=meta.type,
        name=name,
        properties=props,
        stateful=meta.type in STATEFUL_TYPES,
        protected=bool(state and state.protect),
        llm_workload=in_llm_workload(meta.urn),
        bulk_import=in_import(meta.urn),
    )


def load_events(path: str | Path) -> list[Any]:
    """Engine events recorded as JSON (a list, or one event per line as `--event-log` writes)."""
    from pulumi.automation.events import EngineEvent

    text = Path(path).read_text(encoding="utf-8").strip()
    raw = (
        json.loads(text)
        if text.startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    return [EngineEvent.from_json(item) for item in raw]
