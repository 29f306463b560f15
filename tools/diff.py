"""Preview any stack-config change before it is applied.

    python -m tools.diff --stack dev --set db.dbType=adb
    python -m tools.diff --stack prod --set network.podCidr=172.24.0.0/16 --markdown diff.md

Renders the stack offline before and after the change (values are YAML scalars: `true`, `2`,
`cn-hangzhou-k`) and prints what `pulumi up` would create, update, replace and delete, with the
changed properties of each (old → new, secrets masked). With `--automation`, and where the
Pulumi CLI and credentials exist, the same change also runs through the real engine
(`pulumi preview --diff` on a copy of the project). The stack file changes only with `--save`.

Exit codes: 0 safe, 1 invalid change, 2 dangerous change (a stateful resource replaced or
deleted), unless `--allow-dangerous`. `tools.model_change` is the same with model checks and a
narrower idea of safe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError
from tools.diff_report import EXIT_INVALID, Report, format_markdown, format_text
from tools.plan_diff import assess, compare
from tools.render import (
    STACKS_DIR,
    RenderError,
    apply_overrides,
    read_stack_file,
    render_config,
)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`["llm.load8bit=false", "db.dbType=adb"]` → `{"llm.load8bit": False, "db.dbType": "adb"}`."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set db.dbType=adb")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not a YAML scalar: {exc}") from None
    return overrides


def describe(overrides: Mapping[str, Any]) -> str:
    """`llm.load8bit=false, db.dbType=adb`: values as they would be typed."""
    def typed(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()

    return ", ".join(f"{key}={typed(value)}" for key, value in overrides.items())


def preview(report: Report, stack: str, overrides: Mapping[str, Any], *, model_scope: bool,
            automation: bool, engine_events: str | None = None) -> Report:
    """Fill `report` with the offline diff (and the engine's, when asked and possible)."""
    before_config = read_stack_file(stack)
    try:
        after_config = apply_overrides(before_config, overrides)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report
    try:
        before = render_config(before_config, stack)
    except ConfigError as exc:
        report.problems.append(f"the stack file stacks/Pulumi.{stack}.yaml is invalid before the "
                               f"change: {exc}")
        return report
    try:
        after = render_config(after_config, stack)
    except ConfigError as exc:
        report.problems += [f"{path}: {message}" for path, message in exc.problems]
        return report
    report.diff = compare(before, after, model_scope=model_scope)
    if engine_events:
        from tools.automation_preview import load_events, summarise

        report.engine = assess(summarise(load_events(engine_events), stack), model_scope)
        report.checks.append(("ok", f"engine preview read from {engine_events}"))
    elif automation:
        _engine_preview(report, stack, overrides, model_scope)
    return report


def _engine_preview(report: Report, stack: str, overrides: Mapping[str, Any],
                    model_scope: bool) -> None:
    from pulumi.automation import CommandError, InvalidVersionError

    from tools.automation_preview import run_preview, unavailable_reason

    reason = unavailable_reason()
    if reason:
        report.checks.append(("skip", f"engine preview (Automation API) skipped: {reason}"))
        return
    try:
        engine, _ = run_preview(stack, overrides)
    except (CommandError, InvalidVersionError, OSError) as exc:  # login, plugins, CLI version
        report.checks.append(("warn", f"engine preview (Automation API) failed: "
                                      f"{type(exc).__name__}: {str(exc)[:500]}"))
        return
    report.engine = assess(engine, model_scope=model_scope)
    report.checks.append(("ok", "engine preview (Automation API) ran"))


def finish(report: Report, args: argparse.Namespace, overrides: Mapping[str, Any]) -> int:
    """Print, write the Markdown, save the override when asked and allowed; return the exit."""
    print(format_text(report, details=not args.summary))
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(report), encoding="utf-8")
        print(f"\nMarkdown written to {args.markdown}")
    code = report.exit_code
    if args.save:
        if code != 0:
            print(f"\nNot saved: the change is {'invalid' if code == 1 else 'dangerous'} "
                  "(see above).", file=sys.stderr)
        else:
            from tools.stack_file import write_overrides

            path = STACKS_DIR / f"Pulumi.{args.stack}.yaml"
            write_overrides(path, overrides)
            print(f"\nSaved {describe(overrides)} to {path}")
    return code


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the result as Markdown for a PR comment")
    parser.add_argument("--allow-dangerous", action="store_true",
                        help="exit 0 even when the change is flagged dangerous")
    parser.add_argument("--automation", action="store_true",
                        help="also run a real `pulumi preview --diff` through the Automation API "
                             "(needs the Pulumi CLI and credentials; skipped otherwise)")
    parser.add_argument("--engine-events", metavar="FILE",
                        help="summarise a recorded engine preview instead of running one: the "
                             "file `pulumi preview --diff --event-log FILE` wrote (JSON lines)")
    parser.add_argument("--save", action="store_true",
                        help="write the change into the stack file (comments kept) when it is "
                             "valid and safe (or --allow-dangerous)")
    parser.add_argument("--summary", action="store_true",
                        help="terminal output without per-property details")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--set", dest="assignments", action="append", required=True,
                        metavar="KEY=VALUE",
                        help="a config change (repeatable), e.g. db.dbType=adb")
    args = parser.parse_args(argv)
    try:
        overrides = parse_assignments(args.assignments)
        read_stack_file(args.stack)
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    title = f"Config change on stack {args.stack}: {describe(overrides)}"
    report = Report(title, allow_dangerous=args.allow_dangerous)
    try:
        preview(report, args.stack, overrides, model_scope=False, automation=args.automation,
                engine_events=args.engine_events)
    except RenderError as exc:
        print(f"error: cannot render stack {args.stack}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return finish(report, args, overrides)


if __name__ == "__main__":
    sys.exit(main())
