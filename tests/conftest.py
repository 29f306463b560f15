"""Shared fixtures: shipped stack configs and their offline renderings (rendered once per run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from components.config import raw_from_config_map  # noqa: E402
from tools.offline.engine import Rendering, render_stack  # noqa: E402
from tools.offline.stack_files import read_stack_file  # noqa: E402

SHIPPED_STACKS = ("dev", "staging", "prod")
_RENDERINGS: dict[str, Rendering] = {}


def ours(stack: str) -> dict:
    """The `chatchat:*` keys of a shipped stack, without the namespace."""
    return raw_from_config_map(read_stack_file(stack))


def rendered(stack: str) -> Rendering:
    """The shipped stack rendered offline, cached: renderings are deterministic."""
    if stack not in _RENDERINGS:
        _RENDERINGS[stack] = render_stack(stack)
    return _RENDERINGS[stack]


@pytest.fixture(params=SHIPPED_STACKS)
def shipped_stack(request) -> str:
    return request.param
