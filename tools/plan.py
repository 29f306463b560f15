"""Offline plan: render a stack without the Pulumi CLI or a cloud account.

    python -m tools plan --stack dev          # resource tree and a count per type
    python -m tools plan --stack dev --json   # one JSON object per resource (stable interface)
    python -m tools plan --stack prod --set db.adb.instanceSpec=4C16G   # try a change

Exit codes: 0 rendered, 1 invalid stack config (one line per problem), 2 cannot render.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from components.config import ConfigError
from tools.cli import (
    add_set_argument,
    add_stack_arguments,
    command_parser,
    legacy_entry,
    parse_assignments,
)
from tools.offline.engine import RenderError, Rendering, render_stack, resource_tree
from tools.offline.wire import mask_secrets


def format_tree(rendering: Rendering) -> str:
    lines = [f"Stack {rendering.stack}: {len(rendering.resources)} resources"]
    for depth, resource in resource_tree(rendering.resources):
        marker = " [protected]" if resource.protect else ""
        lines.append(f"{'  ' * (depth + 1)}{resource.type}  {resource.name}{marker}")
    lines.append("")
    lines.append("Resources per type:")
    counts = Counter(r.type for r in rendering.resources)
    width = max((len(t) for t in counts), default=0)
    for type_token, count in sorted(counts.items()):
        lines.append(f"  {type_token:<{width}}  {count}")
    if rendering.outputs:
        lines.append("")
        lines.append("Outputs:")
        for name, value in mask_secrets(rendering.outputs).items():
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {name}: {shown if len(shown) < 120 else shown[:117] + '...'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("plan", __doc__)
    add_stack_arguments(parser)
    add_set_argument(parser, help_text="render with a stack config key changed")
    parser.add_argument("--json", action="store_true", help="print a JSON array of resources")
    args = parser.parse_args(argv)
    try:
        overrides = parse_assignments(args.assignments)
    except ValueError as exc:
        print(f"stack {args.stack}: {exc}", file=sys.stderr)
        return 1
    try:
        rendering = render_stack(args.stack, overrides, stacks_dir=args.stacks_dir)
    except ConfigError as exc:
        print(f"stack {args.stack}: {exc}", file=sys.stderr)
        return 1
    except (RenderError, FileNotFoundError, ValueError) as exc:
        print(f"stack {args.stack}: cannot render: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_json() for r in rendering.resources], indent=2, sort_keys=True))
    else:
        print(format_tree(rendering))
    return 0


if __name__ == "__main__":
    sys.exit(legacy_entry("plan"))
