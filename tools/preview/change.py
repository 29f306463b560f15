"""The preview flow `diff` and `model-change` share: render the stack before and after a config
change, diff the two (and the engine's preview, when asked), print the report, and save the
change into the stack file only when asked and the change is safe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError
from tools.cli import add_stack_arguments
from tools.offline.engine import render_config
from tools.offline.stack_files import STACKS_DIR, apply_overrides, read_stack_file, stack_path
from tools.preview.plan_diff import assess, compare, import_runs
from tools.preview.report import Report, format_markdown, format_text


def describe(overrides: Mapping[str, Any]) -> str:
    """`llm.load8bit=false, db.dbType=adb`: values as they would be typed (unset: `key=`)."""

    def typed(value: Any) -> str:
        if value is None:
            return ""
        return (
            yaml.safe_dump(value, default_flow_style=True, allow_unicode=True)
            .removesuffix("...\n")
            .strip()
        )

    return ", ".join(f"{key}={typed(value)}" for key, value in overrides.items())


def preview(
    report: Report,
    stack: str,
    overrides: Mapping[str, Any],
    *,
    model_scope: bool,
    automation: bool,
    engine_events: str | None = None,
    stacks_dir: Path = STACKS_DIR,
) -> Report:
    """Fill `report` with the offline diff (and the engine's, when asked and possible)."""
    before_config = read_stack_file(stack, stacks_dir)
    try:
        after_config = apply_overrides(before_config, overrides)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report
    try:
        before = render_config(before_config, stack)
    except ConfigError as exc:
        report.problems.append(
            f"the stack file {stack_path(stack, stacks_dir)} is invalid before the change: {exc}"
        )
        return report
    try:
        after = render_config(after_config, stack)
    except ConfigError as exc:
        report.problems += [f"{path}: {message}" for path, message in exc.problems]
        return report
    report.diff = compare(before, after, model_scope=model_scope)
    report.checks += [("ok", line) for line in import_runs(report.diff)]
    if engine_events:
        from tools.preview.engine_events import load_events, summarise

        report.engine = assess(summarise(load_events(engine_events), stack), model_scope)
        report.checks.append(("ok", f"engine preview read from {engine_events}"))
    elif automation:
        _engine_preview(report, stack, overrides, model_scope, stacks_dir)
    return report


def _engine_preview(
    report: Report, stack: str, overrides: Mapping[str, Any], model_scope: bool, stacks_dir: Path
) -> None:
    from pulumi.automation import CommandError, InvalidVersionError

    from tools.preview.automation import run_preview, unavailable_reason

    reason = unavailable_reason()
    if reason:
        report.checks.append(("skip", f"engine preview (Automation API) skipped: {reason}"))
        return
    try:
        engine, _ = run_preview(stack, overrides, stacks_dir)
    except (CommandError, InvalidVersionError, OSError) as exc:  # login, plugins, CLI version
        report.checks.append(
            (
                "warn",
                f"engine preview (Automation API) failed: {type(exc).__name__}: {str(exc)[:500]}",
            )
        )
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
            print(
                f"\nNot saved: the change is {'invalid' if code == 1 else 'dangerous'} "
                "(see above).",
                file=sys.stderr,
            )
        else:
            from tools.offline.stack_files import write_overrides

            path = stack_path(args.stack, args.stacks_dir)
            write_overrides(path, overrides)
            print(f"\nSaved {describe(overrides)} to {path}")
    return code


def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every change preview: the stack, the report, the engine, saving."""
    add_stack_arguments(parser)
    parser.add_argument(
        "--markdown", metavar="FILE", help="also write the result as Markdown for a PR comment"
    )
    parser.add_argument(
        "--allow-dangerous",
        action="store_true",
        help="exit 0 even when the change is flagged dangerous",
    )
    parser.add_argument(
        "--automation",
        action="store_true",
        help="also run a real `pulumi preview --diff` through the Automation API "
        "(needs the Pulumi CLI and credentials; skipped otherwise)",
    )
    parser.add_argument(
        "--engine-events",
        metavar="FILE",
        help="summarise a recorded engine preview instead of running one: the "
        "file `pulumi preview --diff --event-log FILE` wrote (JSON lines)",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="write the change into the stack file (comments kept) when it is "
        "valid and safe (or --allow-dangerous)",
    )
    parser.add_argument(
        "--summary", action="store_true", help="terminal output without per-property details"
    )
