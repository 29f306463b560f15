"""Offline policy check: the CrossGuard pack in `policies/` over stacks rendered without a cloud.

    python -m tools policy --stack prod
    python -m tools policy --all --format markdown --output policy-report.md
    python -m tools policy --all --format sarif --output policy.sarif --config cfg.json
    python -m tools policy --stack dev --set chat.service.type=LoadBalancer
    python -m tools policy --stack dev --program my_resources.py

Each stack is rendered offline and every resource goes through the pack's own policy objects as
under `pulumi preview --policy-pack policies` (`tools.checks.policy_runner`). `--config` takes
the same JSON file as `pulumi preview --policy-pack-config` (`{"all": "mandatory",
"gpu-node-cap": {"maxGpuNodes": 4}, "k8s-resource-requests": "disabled"}`).

Exit codes: 0 no mandatory violation, 1 mandatory violations, 2 a stack cannot be rendered (bad
stack config, the program failed) or the policy config is invalid.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tools.checks.policy_report import format_markdown, format_table, summary
from tools.checks.policy_runner import (
    PolicyConfigError,
    PolicyCrash,
    Report,
    check_stack,
    load_policies,
    settings_for,
)
from tools.checks.sarif import format_sarif
from tools.cli import (
    add_set_argument,
    add_stack_arguments,
    command_parser,
    legacy_entry,
    parse_assignments,
)
from tools.offline.stack_files import stack_names

FORMATS = ("table", "markdown", "sarif")


def exit_code(reports: Sequence[Report]) -> int:
    if any(r.error for r in reports):
        return 2
    return 1 if any(r.count("mandatory") for r in reports) else 0


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("policy", __doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    add_stack_arguments(
        which,
        required=False,
        repeatable=True,
        stack_help="stack to check",
        stacks_dir_parser=parser,
    )
    which.add_argument("--all", action="store_true", help="every stack in the stacks folder")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", type=Path, help="write the report here (default: stdout)")
    parser.add_argument(
        "--config",
        type=Path,
        help="policy config JSON for every stack checked, as for pulumi preview "
        "--policy-pack-config (default: policies/config/<stack>.json where "
        "it exists)",
    )
    parser.add_argument(
        "--program",
        type=Path,
        help="check this Pulumi program file (e.g. resources declared by hand) "
        "instead of __main__.py, under each stack's config",
    )
    add_set_argument(parser, help_text="override a stack config key for this check")
    args = parser.parse_args(argv)

    policies = load_policies()
    stacks = stack_names(args.stacks_dir) if args.all else args.stack
    try:
        overrides = parse_assignments(args.assignments)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        settings = {s: settings_for(s, policies, args.config) for s in stacks}
    except PolicyConfigError as exc:
        print(f"policy config: {exc}", file=sys.stderr)
        return 2

    try:
        reports = [
            check_stack(s, policies, settings[s], overrides, args.program, args.stacks_dir)
            for s in stacks
        ]
    except PolicyCrash as exc:
        print(f"policy pack error: {exc}", file=sys.stderr)
        return 2
    if args.format == "sarif":
        text = format_sarif(reports, policies)
    elif args.format == "markdown":
        text = format_markdown(reports)
    else:
        text = format_table(reports)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        for report in reports:
            print(summary(report), file=sys.stderr)
    else:
        print(text)
    for report in reports:
        if report.error:
            print(f"stack {report.stack}: {report.error}", file=sys.stderr)
    return exit_code(reports)


if __name__ == "__main__":
    sys.exit(legacy_entry("policy"))
