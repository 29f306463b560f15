"""`python -m tools <verb>`: the table of verbs and the flags they share.

Adding a verb is one row in `VERBS`: the module (or package) it names exposes
`main(argv: list[str] | None = None) -> int`, builds its parser with `command_parser`, and takes
the shared flags from `add_stack_arguments` / `add_set_argument` / `parse_assignments` rather
than declaring its own. Modules are imported only when their verb runs, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.offline.stack_files import STACKS_DIR

PROG = "python -m tools"


@dataclass(frozen=True)
class Verb:
    module: str  # exposes main(argv) -> int
    summary: str


VERBS: dict[str, Verb] = {
    "plan": Verb("tools.plan", "render a stack offline: resource tree, or --json"),
    "diff": Verb("tools.diff", "preview any stack-config change (--set KEY=VALUE)"),
    "model-change": Verb("tools.model_change", "check and preview switching llm.model"),
    "policy": Verb(
        "tools.policy", "run the policy pack over stacks offline (table, Markdown, SARIF)"
    ),
    "import-values": Verb(
        "tools.import_values", "turn a values.yaml of the seed Helm chart into a stack file"
    ),
    "preflight": Verb(
        "tools.preflight",
        "ask the Alibaba Cloud account whether the stack can be created (needs credentials)",
    ),
    "config-reference": Verb(
        "tools.config_reference", "print the stack-config reference as Markdown"
    ),
}

EMPTY_VALUE_RULE = "an empty value (KEY=) unsets the key, so that its default applies"


def command_parser(verb: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of one verb: `python -m tools <verb>` in its usage, its module doc as help."""
    return argparse.ArgumentParser(
        prog=f"{PROG} {verb}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_stack_arguments(
    parser: argparse.ArgumentParser | Any,
    *,
    required: bool = True,
    repeatable: bool = False,
    default: str | None = None,
    stack_help: str = "stack name: stacks/Pulumi.<stack>.yaml",
    stacks_dir_parser: argparse.ArgumentParser | None = None,
) -> None:
    """`--stack` and `--stacks-dir`, alike on every verb that reads stack files. `parser` may be
    a mutually exclusive group; `--stacks-dir` then goes on `stacks_dir_parser`."""
    parser.add_argument(
        "--stack",
        required=required,
        default=default,
        action="append" if repeatable else "store",
        help=stack_help + (" (repeatable)" if repeatable else ""),
    )
    (stacks_dir_parser or parser).add_argument(
        "--stacks-dir",
        type=Path,
        default=STACKS_DIR,
        help="folder of Pulumi.<stack>.yaml files (default: stacks/)",
    )


def add_set_argument(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    help_text: str = "override a stack config key",
) -> None:
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        required=required,
        metavar="KEY=VALUE",
        help=f"{help_text} (repeatable; the value is a YAML scalar: true, 2, "
        f"cn-hangzhou-k; {EMPTY_VALUE_RULE})",
    )


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`["llm.load8bit=false", "llm.modelPVC="]` → `{"llm.load8bit": False, "llm.modelPVC": None}`.

    Values are YAML scalars; an empty value (or `null`) is `None`, which unsets the key.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set db.dbType=adb")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not a YAML scalar: {exc}") from None
    return overrides


def _help() -> str:
    width = max(len(name) for name in VERBS)
    rows = "\n".join(f"  {name:<{width}}  {verb.summary}" for name, verb in VERBS.items())
    return (
        f"usage: {PROG} <verb> [options]\n\nCommand-line tools over the Pulumi program; "
        f"none needs the Pulumi CLI or a cloud account\nunless asked (--automation).\n\n"
        f"verbs:\n{rows}\n\n`{PROG} <verb> --help` shows a verb's options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_help(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        print(f"{PROG}: unknown verb {verb!r}; verbs: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    command = importlib.import_module(VERBS[verb].module)
    try:
        return int(command.main(rest))
    except BrokenPipeError:  # `| head` closed the pipe: not an error of ours
        sys.stderr.close()
        return 0


def legacy_entry(verb: str, module: str | None = None) -> int:
    """`python -m tools.plan` and friends: the pre-verb form, kept for one release."""
    print(
        f"note: `python -m {module or VERBS[verb].module}` is deprecated; use `{PROG} {verb}`",
        file=sys.stderr,
    )
    return main([verb, *sys.argv[1:]])
