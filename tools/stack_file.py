"""Write config overrides into `stacks/Pulumi.<stack>.yaml`, keeping its comments and layout.

Only `tools.model_change --save` / `tools.diff --save` (and the throw-away copy the engine preview
runs on) call this: a preview never changes the real stack file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import PROJECT


def write_overrides(path: Path, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys (`llm.model`, `alicloud:region`) in the stack file's `config:` map."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()  # round-trip: comments, key order and quoting survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(path.read_text(encoding="utf-8")) or CommentedMap()
    config = document.setdefault("config", CommentedMap())
    for dotted, value in overrides.items():
        namespace, _, rest = dotted.rpartition(":")
        head, *parts = rest.split(".")
        key = f"{namespace or PROJECT}:{head}"
        if not parts:
            config[key] = value
            continue
        node = config.setdefault(key, CommentedMap())
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise ValueError(f"cannot set {dotted}: {part} is not a mapping in {path}")
            node = node.setdefault(part, CommentedMap())
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted}: not a mapping in {path}")
        node[parts[-1]] = value
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
