"""Text (terminal) and Markdown (PR comment) output of `tools.diff` and `tools.model_change`.

Both read one `Report`. The Markdown is kept under GitHub's 65,536-character comment limit: the
summary, checks and dangers always come first; resource details are cut at the limit with a note
saying how many were left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tools.preview.plan_diff import OP_SYMBOL, OPS, PlanDiff, ResourceChange

GITHUB_COMMENT_LIMIT = 65_536
EXIT_SAFE, EXIT_INVALID, EXIT_DANGEROUS = 0, 1, 2
_VALUE_WIDTH = 120
_TABLE_ROWS = 300  # keeps the table itself well under the comment limit


@dataclass
class Report:
    title: str
    checks: list[tuple[str, str]] = field(default_factory=list)  # (status ok|skip|warn|fail, text)
    problems: list[str] = field(default_factory=list)  # why the change is invalid
    diff: PlanDiff | None = None
    engine: PlanDiff | None = None  # the real engine's preview, when it ran
    allow_dangerous: bool = False

    @property
    def dangerous(self) -> bool:
        return any(d is not None and d.dangerous for d in (self.diff, self.engine))

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_INVALID
        if self.dangerous and not self.allow_dangerous:
            return EXIT_DANGEROUS
        return EXIT_SAFE

    @property
    def verdict(self) -> str:
        if self.problems:
            return "INVALID: the change cannot be applied as asked"
        if self.dangerous:
            suffix = " (allowed by --allow-dangerous)" if self.allow_dangerous else ""
            return f"DANGEROUS: review the flagged changes before applying{suffix}"
        if not any(d is not None and (d.changes or d.outputs) for d in (self.diff, self.engine)):
            return "NO CHANGES"
        return "SAFE: only expected changes"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def _counts_line(diff: PlanDiff) -> str:
    counts = diff.counts()
    return ", ".join(f"{counts[op]} to {op}" for op in OPS) + f", {counts['same']} unchanged"


def _property_lines(change: ResourceChange) -> list[str]:
    lines = []
    for prop in change.properties:
        mark = "  (forces replacement)" if prop.replaces else ""
        if change.op == "create":
            lines.append(f"{prop.path}: {_value(prop.new)}")
        elif change.op == "delete":
            lines.append(f"{prop.path}: {_value(prop.old)}")
        else:
            lines.append(f"{prop.path}: {_value(prop.old)} → {_value(prop.new)}{mark}")
    return lines


_ICON = {"ok": "✅", "skip": "⏭️", "warn": "⚠️", "fail": "❌"}


def _diff_text(diff: PlanDiff, label: str, details: bool) -> list[str]:
    out = ["", f"{label} ({diff.before} → {diff.after}): {_counts_line(diff)}"]
    for op in OPS:
        for change in diff.by_op(op):
            flags = "".join(
                [
                    " [stateful]" if change.stateful else "",
                    " [protected]" if change.protected else "",
                    f" [{change.scope}]" if change.scope else "",
                ]
            )
            out.append(f"  {OP_SYMBOL[op]:>2} {change.type}  {change.name}{flags}")
            if details and op in ("update", "replace"):
                out += [f"       {line}" for line in _property_lines(change)]
            for danger in change.dangers:
                out.append(f"       !! {danger}")
    if diff.outputs:
        out.append("  stack outputs:")
        out += [f"     {p.path}: {_value(p.old)} → {_value(p.new)}" for p in diff.outputs]
    return out


def format_text(report: Report, details: bool = True) -> str:
    out = [report.title, "=" * len(report.title)]
    for status, text in report.checks:
        out.append(f"[{status:>4}] {text}")
    for problem in report.problems:
        out.append(f"[fail] {problem}")
    if report.diff is not None:
        out += _diff_text(report.diff, "Offline diff", details)
    if report.engine is not None:
        out += _diff_text(report.engine, "Pulumi engine preview", details)
    out += ["", f"Verdict: {report.verdict} (exit {report.exit_code})"]
    return "\n".join(out)


def format_markdown(report: Report, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    head = [f"### {report.title}", "", f"**{report.verdict}** (exit code {report.exit_code})", ""]
    if report.checks or report.problems:
        head += ["| check | result |", "|---|---|"]
        head += [f"| {_ICON[s]} | {_md_cell(t)} |" for s, t in report.checks]
        head += [f"| {_ICON['fail']} | {_md_cell(p)} |" for p in report.problems]
        head.append("")
    diff = report.diff
    sections: list[str] = []
    if diff is not None:
        head += [f"**Offline diff** `{diff.before}` → `{diff.after}`: {_counts_line(diff)}", ""]
        dangers = diff.dangers + (report.engine.dangers if report.engine is not None else [])
        if dangers:
            head += ["**Dangers**", ""]
            head += [f"- ❗ `{c.name}` ({c.type}, {c.op}): {_md_cell(d)}" for c, d in dangers]
            head.append("")
        if diff.changes:
            head += ["| op | type | name | notes |", "|---|---|---|---|"]
            for change in diff.changes[:_TABLE_ROWS]:
                notes = ", ".join(
                    n
                    for n, on in (
                        ("stateful", change.stateful),
                        ("protected", change.protected),
                        ("llm workload", change.llm_workload),
                        ("import", change.bulk_import),
                    )
                    if on
                )
                head.append(
                    f"| `{OP_SYMBOL[change.op]}` {change.op} | `{change.type}` | "
                    f"`{change.name}` | {notes} |"
                )
            if len(diff.changes) > _TABLE_ROWS:
                head.append(f"| … | {len(diff.changes) - _TABLE_ROWS} more | | |")
            head.append("")
        if diff.outputs:
            head += [
                "**Stack outputs**: "
                + ", ".join(
                    f"`{p.path}` {_md_cell(_value(p.old))} → {_md_cell(_value(p.new))}"
                    for p in diff.outputs
                ),
                "",
            ]
        for change in diff.changes:
            if change.op not in ("update", "replace"):
                continue
            body = "\n".join(_property_lines(change)).replace("```", "'''")
            sections.append(
                f"<details><summary>{OP_SYMBOL[change.op]} <code>{change.name}"
                f"</code> ({len(change.properties)} properties)</summary>\n\n"
                f"```\n{body}\n```\n</details>\n"
            )
    tail = []
    if report.engine is not None:
        engine = "\n".join(_diff_text(report.engine, "Pulumi engine preview", True)).strip()
        tail = [
            "",
            "<details><summary>Pulumi engine preview</summary>",
            "",
            "```",
            engine.replace("```", "'''"),
            "```",
            "</details>",
        ]
    return _fit("\n".join(head), sections, "\n".join(tail), limit)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fit(head: str, sections: list[str], tail: str, limit: int) -> str:
    """head + as many sections as fit + tail, with a note when sections were left out."""
    note = (
        "\n_{n} of {total} resource detail sections left out: the comment is limited to "
        f"{limit:,} characters; run the command locally for the full diff._\n"
    )
    budget = limit - len(head) - len(tail) - len(note) - 32
    kept: list[str] = []
    for section in sections:
        if len(section) + 1 > budget:
            break
        kept.append(section)
        budget -= len(section) + 1
    parts = [head, *kept]
    if len(kept) < len(sections):
        parts.append(note.format(n=len(sections) - len(kept), total=len(sections)))
    text = "\n".join(parts) + tail
    if len(text) > limit:  # the head alone is too long: cut it hard, still say so
        cut = "\n\n_…truncated at the GitHub comment limit._"
        text = text[: limit - len(cut)] + cut
    return text
