"""Turn a values.yaml of the seed Helm chart (ACK app catalog `langchain-chatchat` 0.1.0) into a
stack config file of this program.

    python -m tools import-values values.yaml [--stack NAME] [-o stacks/Pulumi.NAME.yaml]

Every chart value has a key of the same name here (DESIGN.md §3), so most keys copy over. What
the chart did by hand becomes config: the ECI annotations turn into `*.pod.eciSpecs` and
`*.pod.eciEphemeralStorageGib`. Keys this program does not take (an external ADB's credentials:
the stack makes its own ADB) are reported as dropped; keys nobody knows are reported as unknown.
Both go to stderr, with the problems `components.config.parse_config` finds in the result.

Chart values are laid over `stacks/Pulumi.<stack>.yaml` when that file exists (cluster, network
and tags come from it); otherwise over a skeleton with one A10 pool, the chart's recommended GPU.
Exit codes: 0 valid, 1 written but invalid (fix the keys named), 2 unreadable input.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError, parse_config, raw_from_config_map
from components.contract import ECI_LABEL
from components.contract import ECI_SPECS_ANNOTATION as ECI_SPECS
from components.contract import ECI_STORAGE_ANNOTATION as ECI_STORAGE
from tools.cli import add_stack_arguments, command_parser, legacy_entry
from tools.offline.stack_files import read_stack_file, set_dotted, stack_path

# chart key -> our key (dotted, under `chatchat:`); values copy as they are.
DIRECT = {
    "llm.model": "llm.model",
    "llm.load8bit": "llm.load8bit",
    "llm.modelPVC": "llm.modelPVC",
    "chat.kbPVC": "chat.kbPVC",
    "db.dbType": "db.dbType",
    "db.embeddingModel": "db.embeddingModel",
    **{
        f"{side}.{key}": f"{side}.{key}"
        for side in ("llm", "chat")
        for key in (
            "pod.replicas",
            "pod.instanceType",
            "pod.tolerations",
            "pod.nodeSelector",
            "image.repository",
            "image.tag",
            "image.digest",
            "service.type",
        )
    },
}
# Chart keys with a meaning here that is not a plain copy.
SPECIAL = {
    f"{side}.{key}"
    for side in ("llm", "chat")
    for key in ("pod.resources", "pod.annotations", "pod.labels")
}
# Chart keys this program sets itself: reported, not carried over.
DROPPED = {
    "llm.image.pullPolicy": "pods always use IfNotPresent with pinned tags",
    "chat.image.pullPolicy": "pods always use IfNotPresent with pinned tags",
    "db.adb": "the stack creates its own AnalyticDB instance (db.adb sizes it); the connection "
    "reaches the chat pod from a generated Secret",
    "imagePullSecrets": "images come from the stack's own registry",
}

SKELETON: dict[str, Any] = {
    "alicloud:region": "cn-hangzhou",
    "chatchat:tags": {"owner": "chart-import"},
    "chatchat:cluster": {
        "gpuPools": [
            {"name": "a10", "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"], "minSize": 0, "maxSize": 1}
        ]
    },
}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path, stopping at keys we take whole (lists, maps of our own)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and path not in SPECIAL
            and path not in DIRECT
            and path not in DROPPED
        ):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _quantities(resources: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        kind: {name: str(q) for name, q in (resources.get(kind) or {}).items()}
        for kind in ("requests", "limits")
        if resources.get(kind)
    }


def convert(values: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(stack config map, notes). Notes name every chart key that was dropped or unknown."""
    config, notes = copy.deepcopy(base), []
    for path, value in _flatten(values).items():
        side = path.split(".", 1)[0]
        if path in DROPPED:
            notes.append(f"dropped {path}: {DROPPED[path]}")
        elif path in DIRECT:
            if value in ("", None, [], {}):
                continue  # the chart's "not set"
            set_dotted(config, DIRECT[path], value)
        elif path.endswith("pod.resources"):
            if value:
                set_dotted(config, f"{side}.pod.resources", _quantities(value))
        elif path.endswith("pod.annotations"):
            annotations = dict(value or {})
            if ECI_SPECS in annotations:
                specs = [s.strip() for s in str(annotations.pop(ECI_SPECS)).split(",") if s]
                set_dotted(config, f"{side}.pod.eciSpecs", specs)
            if ECI_STORAGE in annotations:
                size = str(annotations.pop(ECI_STORAGE)).removesuffix("Gi")
                set_dotted(config, f"{side}.pod.eciEphemeralStorageGib", int(size))
            if annotations:
                set_dotted(config, f"{side}.pod.annotations", annotations)
        elif path.endswith("pod.labels"):
            labels = {k: str(v) for k, v in (value or {}).items() if k != ECI_LABEL}
            if labels:
                set_dotted(config, f"{side}.pod.labels", labels)
        else:
            notes.append(f"unknown chart key {path}: not carried over")
    return config, notes


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("import-values", __doc__)
    parser.add_argument("values", type=Path, help="the chart's values.yaml")
    add_stack_arguments(
        parser,
        required=False,
        default="imported",
        stack_help="stack name; values are laid over its stack file when it "
        "exists (default: imported)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        values = yaml.safe_load(args.values.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: cannot read {args.values}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(values, dict):
        print(f"error: {args.values} is not a mapping of chart values", file=sys.stderr)
        return 2
    stack_file = stack_path(args.stack, args.stacks_dir)
    base = read_stack_file(args.stack, args.stacks_dir) if stack_file.is_file() else SKELETON
    config, notes = convert(values, base)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    text = yaml.safe_dump({"config": config}, sort_keys=False, allow_unicode=True)
    header = f"# Imported from {args.values.name} by python -m tools import-values.\n"
    if args.output:
        args.output.write_text(header + text, encoding="utf-8")
    else:
        sys.stdout.write(header + text)
    try:
        parse_config(raw_from_config_map(config), args.stack)
    except ConfigError as exc:
        for path, message in exc.problems:
            print(f"problem: {path}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(legacy_entry("import-values"))
