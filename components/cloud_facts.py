"""The cloud facts table (`policies/chatchat_policies/data/cloud_facts.json`): creatable ACK
versions, ADB specs per category, NVIDIA driver versions, addon prerequisites, CSI options.

One file, shipped inside the policy pack so that the pack stays installable alone; the program
reads the same file from here. Each fact carries its source and the date it was verified.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

FACTS_PATH = (
    Path(__file__).resolve().parent.parent
    / "policies"
    / "chatchat_policies"
    / "data"
    / "cloud_facts.json"
)
_ACK_VERSION = re.compile(r"^1\.(\d+)\.\d+-aliyun\.\d+$")


@cache
def facts() -> dict[str, Any]:
    return json.loads(FACTS_PATH.read_text(encoding="utf-8"))


def value(area: str, name: str) -> Any:
    """One fact's value, e.g. `value("ack", "creatableMinorVersions")`."""
    return facts()[area][name]["value"]


def ack_minor(version: str) -> str | None:
    """`1.34` for `1.34.1-aliyun.1`; None when the text is not an ACK version."""
    match = _ACK_VERSION.match(version)
    return f"1.{match.group(1)}" if match else None


def creatable_ack_minors() -> list[str]:
    return list(value("ack", "creatableMinorVersions"))


def adb_specs(category: str) -> list[str]:
    """Storage-elastic segment specs the API accepts for a category (Basic, HighAvailability)."""
    return list(value("adb", "storageElasticSpecs")[category])


def nvidia_driver_versions() -> list[str]:
    return list(value("ack", "nvidiaDriverVersions"))


def unverified() -> list[str]:
    """`area.name` of every fact no document we could read confirms."""
    return [
        f"{area}.{name}"
        for area, rows in facts().items()
        if not area.startswith("_")
        for name, row in rows.items()
        if not row.get("verified", False)
    ]
