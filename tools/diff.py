"""Preview any stack-config change before it is applied.

    python -m tools diff --stack dev --set db.dbType=adb
    python -m tools diff --stack prod --set network.podCidr=172.24.0.0/16 --markdown diff.md

Renders the stack offline before and after the change (values are YAML scalars: `true`, `2`,
`cn-hangzhou-k`) and prints what `pulumi up` would create, update, replace and delete, with the
changed properties of each (old → new, secrets masked). With `--automation`, and where the
Pulumi CLI and credentials exist, the same change also runs through the real engine
(`pulumi preview --diff` on a copy of the project). The stack file changes only with `--save`.

Exit codes: 0 safe, 1 invalid change, 2 dangerous change (a stateful resource replaced or
deleted), unless `--allow-dangerous`. `model-change` is the same with model checks and a
narrower idea of safe.
"""

from __future__ import annotations

import sys

from components.config import ConfigError
from tools.cli import add_set_argument, command_parser, legacy_entry, parse_assignments
from tools.offline.engine import RenderError
from tools.offline.stack_files import read_stack_file
from tools.preview.change import add_preview_arguments, describe, finish, preview
from tools.preview.report import EXIT_INVALID, Report


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("diff", __doc__)
    add_preview_arguments(parser)
    add_set_argument(parser, required=True, help_text="a config change, e.g. db.dbType=adb")
    args = parser.parse_args(argv)
    try:
        overrides = parse_assignments(args.assignments)
        read_stack_file(args.stack, args.stacks_dir)
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    title = f"Config change on stack {args.stack}: {describe(overrides)}"
    report = Report(title, allow_dangerous=args.allow_dangerous)
    try:
        preview(
            report,
            args.stack,
            overrides,
            model_scope=False,
            automation=args.automation,
            engine_events=args.engine_events,
            stacks_dir=args.stacks_dir,
        )
    except RenderError as exc:
        print(f"error: cannot render stack {args.stack}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return finish(report, args, overrides)


if __name__ == "__main__":
    sys.exit(legacy_entry("diff"))
