"""Write config overrides into `stacks/Pulumi.<stack>.yaml`, keeping its comments and layout.

Only `tools.model_change --save` / `tools.diff --save` (and the throw-away copy the engine preview
runs on) call this: a preview never changes the real stack file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.render import set_dotted


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
        try:
            set_dotted(config, dotted, value, new_map=CommentedMap)
        except ValueError as exc:
            raise ValueError(f"{exc} in {path}") from None
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
