"""Stack files (`stacks/Pulumi.<stack>.yaml`): read their `config:` map, apply dotted-key
overrides to it, and write overrides back keeping the file's comments and layout.

Only `diff --save` / `model-change --save` (and the throw-away copy the engine preview runs on)
write a stack file: a preview never changes the real one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT, ConfigError

REPO = Path(__file__).resolve().parents[2]
STACKS_DIR = REPO / "stacks"


def stack_names(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def stack_path(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    """The `config:` map of `stacks/Pulumi.<stack>.yaml`, keys fully qualified."""
    path = stack_path(stack, stacks_dir)
    if not path.is_file():
        known = ", ".join(stack_names(stacks_dir)) or "none"
        raise FileNotFoundError(f"no stack file {path} (stacks: {known})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError([(str(path), "needs a top-level `config:` mapping")])
    return dict(config)


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `{"llm.model": "x", "alicloud:region": "y"}` to a fully qualified config map.

    A key without a namespace is ours (`chatchat:`); dots walk into structured values and create
    what is missing; a `None` value removes the key (its default applies). The input is not
    modified.
    """
    result = copy.deepcopy(dict(config))
    for dotted, value in overrides.items():
        set_dotted(result, dotted, value)
    return result


def set_dotted(
    config: MutableMapping[str, Any],
    dotted: str,
    value: Any,
    new_map: Callable[[], MutableMapping[str, Any]] = dict,
) -> None:
    """Set one dotted key in a fully qualified config map, making missing maps with `new_map`
    (a plain dict here; the stack-file writer passes ruamel's comment-keeping map). `None`
    removes the key instead."""
    namespace, _, path = dotted.rpartition(":")
    head, *rest = path.split(".")
    key = f"{namespace or PROJECT}:{head}"
    if not rest:
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
        return
    node = config.setdefault(key, new_map())
    for part in rest[:-1]:
        if not isinstance(node, MutableMapping):
            raise ValueError(f"cannot set {dotted}: {part} is not a mapping")
        node = node.setdefault(part, new_map())
    if not isinstance(node, MutableMapping):
        raise ValueError(f"cannot set {dotted}: not a mapping")
    if value is None:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = value


def engine_config(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Config as the engine hands it to the program: strings, structured values as JSON."""
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.append(key)
            value = "[secret]"  # ciphertext cannot be read offline
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return values, secret_keys


def write_overrides(path: Path, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys (`llm.model`, `alicloud:region`) in the stack file's `config:` map."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml_rt = YAML()  # round-trip: comments, key order and quoting survive
    yaml_rt.preserve_quotes = True
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    document = yaml_rt.load(path.read_text(encoding="utf-8")) or CommentedMap()
    config = document.setdefault("config", CommentedMap())
    for dotted, value in overrides.items():
        try:
            set_dotted(config, dotted, value, new_map=CommentedMap)
        except ValueError as exc:
            raise ValueError(f"{exc} in {path}") from None
    with path.open("w", encoding="utf-8") as handle:
        yaml_rt.dump(document, handle)
