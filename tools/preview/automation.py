"""The same change through the real engine: `pulumi preview --diff` via the Automation API.

Where the Pulumi CLI is on PATH and cloud credentials exist, `run_preview` copies the project
(Pulumi.yaml, __main__.py, components/ and the stack file) into a temporary directory, applies
the config override to that copy only, selects the stack there and runs
`stack.preview(diff=True, on_event=...)`. The real stack file is not touched (`--save` writes it
on purpose, elsewhere). `tools.preview.engine_events.summarise` turns the events into a
`PlanDiff`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.offline.stack_files import REPO, STACKS_DIR, stack_path, write_overrides
from tools.preview.engine_events import summarise
from tools.preview.plan_diff import PlanDiff

_PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt")
# The GPU family table (and the cloud facts beside it) ships in the pack and the program reads it.
_PROJECT_DIRS = ("components", "policies/chatchat_policies/data")
_CLOUD_CREDENTIALS = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY")


def unavailable_reason() -> str | None:
    """Why the engine preview cannot run here, or None when it can."""
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not on PATH"
    if not any(os.environ.get(k) for k in _CLOUD_CREDENTIALS):
        return (
            "no Alibaba Cloud credentials (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET) in the environment"
        )
    return None


def _project_copy(stack: str, overrides: Mapping[str, Any], target: Path, stacks_dir: Path) -> None:
    for name in _PROJECT_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target / name)
    for name in _PROJECT_DIRS:
        shutil.copytree(
            REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    (target / "stacks").mkdir()
    stack_file = target / "stacks" / f"Pulumi.{stack}.yaml"
    shutil.copy2(stack_path(stack, stacks_dir), stack_file)
    write_overrides(stack_file, overrides)
    if (REPO / ".venv").is_dir():  # Pulumi.yaml names the project's virtualenv relatively
        (target / ".venv").symlink_to(REPO / ".venv")


def run_preview(
    stack: str, overrides: Mapping[str, Any], stacks_dir: Path = STACKS_DIR
) -> tuple[PlanDiff, str]:
    """Run `pulumi preview --diff` for the override on a copy of the project; return the summary
    and the engine's own text output."""
    from pulumi import automation as auto

    events: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="chatchat-preview-") as tmp:
        _project_copy(stack, overrides, Path(tmp), stacks_dir)
        workspace_stack = auto.select_stack(stack_name=stack, work_dir=tmp)
        result = workspace_stack.preview(diff=True, on_event=events.append, color="never")
    return summarise(events, stack), result.stdout


def stack_outputs(stack: str) -> dict[str, Any]:
    """The stack's current outputs (secrets left as the engine masks them); reading them does not
    change the stack file."""
    from pulumi import automation as auto

    selected = auto.select_stack(stack_name=stack, work_dir=str(REPO))
    return {name: output.value for name, output in selected.outputs().items()}
