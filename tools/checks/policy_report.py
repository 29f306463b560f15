"""The terminal table and the Markdown (PR comment) report of a policy run."""

from __future__ import annotations

from collections.abc import Iterable

from tools.checks.policy_runner import Report

MARKDOWN_MARKER = "<!-- chatchat-policy-check -->"


def summary(report: Report) -> str:
    if report.error:
        return f"stack {report.stack}: NOT CHECKED, {report.error}"
    return (
        f"stack {report.stack}: {report.resources} resources, "
        f"{report.count('mandatory')} mandatory and {report.count('advisory')} advisory "
        f"violation(s)"
    )


def format_table(reports: Iterable[Report]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(summary(report))
        if report.violations:
            rows = [
                (v.level.upper(), v.policy, v.resource, v.message.replace("\n", " "))
                for v in report.violations
            ]
            widths = [
                max(len(row[i]) for row in [*rows, ("LEVEL", "POLICY", "RESOURCE", "")])
                for i in range(3)
            ]
            lines.append(
                "  "
                + "  ".join(
                    h.ljust(w) for h, w in zip(("LEVEL", "POLICY", "RESOURCE"), widths, strict=True)
                )
                + "  MESSAGE"
            )
            for row in sorted(rows, key=lambda row: (row[0] != "MANDATORY", row[1:])):
                lines.append(
                    "  "
                    + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
                    + "  "
                    + row[3]
                )
        lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def format_markdown(reports: Iterable[Report]) -> str:
    reports = list(reports)
    mandatory = sum(r.count("mandatory") for r in reports)
    failed = [r.stack for r in reports if r.error]
    verdict = (
        "cannot check " + ", ".join(failed)
        if failed
        else f"{mandatory} mandatory violation(s)"
        if mandatory
        else "passed"
    )
    lines = [MARKDOWN_MARKER, f"## Policy check: {verdict}", ""]
    for report in reports:
        lines += [f"### Stack `{report.stack}`", "", _md(summary(report)), ""]
        if report.violations:
            lines += ["| Level | Policy | Resource | Message |", "|---|---|---|---|"]
            for v in sorted(report.violations, key=lambda v: (v.level != "mandatory", v.policy)):
                icon = ":x:" if v.level == "mandatory" else ":warning:"
                lines.append(
                    f"| {icon} {v.level} | `{v.policy}` | `{_md(v.resource)}` | {_md(v.message)} |"
                )
            lines.append("")
    return "\n".join(lines)
