"""The pack's reader of the cloud facts table (`data/cloud_facts.json`, shipped in the pack; the
program reads the same file through components/cloud_facts.py)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FACTS_PATH = Path(__file__).with_name("data") / "cloud_facts.json"


@cache
def facts() -> dict[str, Any]:
    return json.loads(FACTS_PATH.read_text(encoding="utf-8"))


def value(area: str, name: str) -> Any:
    return facts()[area][name]["value"]
