"""The SARIF 2.1.0 report of a policy run, for code scanning."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from pulumi_policy import Policy, StackValidationPolicy

from tools.checks.policy_report import summary
from tools.checks.policy_runner import PACK_DIR, Report, default_level

_SARIF_LEVEL = {
    "mandatory": "error",
    "advisory": "warning",
    "disabled": "none",
    "remediate": "error",
}


def format_sarif(reports: Iterable[Report], policies: Sequence[Policy]) -> str:
    """SARIF 2.1.0: one run, a rule per policy, a result per violation located at the stack file
    (code scanning needs a file) and, logically, at the resource's URN."""
    rule_index = {p.name: i for i, p in enumerate(policies)}
    rules = [
        {
            "id": p.name,
            "name": "".join(part.title() for part in p.name.split("-")),
            "shortDescription": {"text": p.description},
            "fullDescription": {"text": p.description},
            "defaultConfiguration": {"level": _SARIF_LEVEL[default_level(p).value]},
            "properties": {
                "enforcementLevel": default_level(p).value,
                "kind": "stack" if isinstance(p, StackValidationPolicy) else "resource",
            },
        }
        for p in policies
    ]
    results = []
    for report in reports:
        for v in report.violations:
            location: dict[str, Any] = {
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": f"stacks/Pulumi.{v.stack}.yaml",
                        "uriBaseId": "%SRCROOT%",
                    },
                    "region": {"startLine": 1},
                }
            }
            if v.urn:
                location["logicalLocations"] = [
                    {"fullyQualifiedName": v.urn, "name": v.resource, "kind": "resource"}
                ]
            fingerprint = hashlib.sha256(f"{v.policy}|{v.urn}|{v.message}".encode()).hexdigest()
            results.append(
                {
                    "ruleId": v.policy,
                    "ruleIndex": rule_index[v.policy],
                    "level": _SARIF_LEVEL[v.level],
                    "message": {"text": f"[{v.stack}] {v.message}"},
                    "locations": [location],
                    "partialFingerprints": {"chatchatPolicyViolation/v1": fingerprint},
                    "properties": {"stack": v.stack, "enforcementLevel": v.level},
                }
            )
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "chatchat-policy-pack",
                        "version": _pack_version(),
                        "rules": rules,
                    }
                },
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not any(r.error for r in reports),
                        "toolExecutionNotifications": [
                            {"level": "error", "message": {"text": summary(r)}}
                            for r in reports
                            if r.error
                        ],
                    }
                ],
            }
        ],
    }
    return json.dumps(document, indent=2)


def _pack_version() -> str:
    document = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    return str(document.get("version", "0.0.0"))
