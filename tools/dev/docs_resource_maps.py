"""Rewrite the resource maps in docs/infrastructure.md from the offline plans (dev only).

    python -m tools.dev.docs_resource_maps

Each stack's map is the code block that starts with `Stack <stack>: N resources`; the test
`test_docs_resource_map_is_current` fails until this has been run after a plan change.
"""

from __future__ import annotations

import re

from tools.offline.engine import render_stack
from tools.offline.stack_files import REPO, stack_names
from tools.plan import format_tree

DOC = REPO / "docs" / "infrastructure.md"


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    for stack in stack_names():
        tree = format_tree(render_stack(stack)).split("\n\nResources per type:")[0]
        block = re.compile(rf"^Stack {re.escape(stack)}: \d+ resources\n.*?(?=^```)", re.M | re.S)
        text, found = block.subn(lambda _: tree + "\n", text)  # noqa: B023 (used at once)
        if found != 1:
            raise SystemExit(f"{DOC}: expected one map of stack {stack}, found {found}")
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
