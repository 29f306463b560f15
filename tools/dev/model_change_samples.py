"""Regenerate the sample outputs in docs/model-change.md by running the tools.

    python -m tools.dev.model_change_samples          # rewrite the samples in place
    python -m tools.dev.model_change_samples --check  # exit 1 when the samples are stale

Each sample sits between `<!-- sample:NAME -->` and `<!-- /sample:NAME -->` and is the Markdown the
command in `SAMPLES` writes, so the page shows what the tool prints today, not what it once did.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tools.cli import PROG
from tools.cli import main as tools_main
from tools.offline.stack_files import REPO

DOC = REPO / "docs" / "model-change.md"
SAMPLES: dict[str, tuple[str, list[str]]] = {
    "model-change": (
        "model-change",
        [
            "--stack",
            "dev",
            "--model",
            "qwen-14b-chat-aiacc",
            "--no-store-check",
            "--engine-events",
            "tests/fixtures/engine_events_model_change.json",
        ],
    ),
    "dangerous": (
        "diff",
        [
            "--stack",
            "prod",
            "--set",
            "db.adb.storageSize=100",
            "--engine-events",
            "tests/fixtures/engine_events_adb_replace.json",
        ],
    ),
}


def sample(verb: str, argv: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "comment.md"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tools_main([verb, *argv, "--markdown", str(target)])
        return target.read_text(encoding="utf-8")


def _literal(replacement: str) -> Callable[[re.Match[str]], str]:
    """A `re.sub` replacement taken as it is (no backslash escapes)."""
    return lambda _match: replacement


def refreshed(text: str) -> str:
    for name, (verb, argv) in SAMPLES.items():
        command = f"{PROG} {verb} {' '.join(argv)} --markdown comment.md"
        body = (
            f"<!-- sample:{name} -->\n`{command}` writes:\n\n````markdown\n"
            f"{sample(verb, argv).rstrip()}\n````\n<!-- /sample:{name} -->"
        )
        text, count = re.subn(
            rf"<!-- sample:{name} -->.*?<!-- /sample:{name} -->", _literal(body), text, flags=re.S
        )
        if count != 1:
            raise SystemExit(f"{DOC}: expected one sample:{name} block, found {count}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.model_change_samples", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="only report stale samples")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    new = refreshed(current)
    if args.check:
        if new != current:
            print(f"{DOC} samples are stale: run python -m tools.dev.model_change_samples")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"refreshed {len(SAMPLES)} samples in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
