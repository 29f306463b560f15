"""Offline policy check: the CrossGuard pack in `policies/` over stacks rendered without a cloud.

    python -m tools.policy_check --stack prod
    python -m tools.policy_check --all --format markdown --output policy-report.md
    python -m tools.policy_check --all --format sarif --output policy.sarif --config cfg.json
    python -m tools.policy_check --stack dev --set chat.service.type=LoadBalancer
    python -m tools.policy_check --stack dev --program my_resources.py

Each stack is rendered with `tools.render.render_stack`; every resource goes through the pack's
own policy objects as real `pulumi_policy` `ResourceValidationArgs` / `StackValidationArgs`, so a
policy behaves here as under `pulumi preview --policy-pack policies`. `--config` takes the same
JSON file as `pulumi preview --policy-pack-config` (`{"all": "mandatory", "gpu-node-cap":
{"maxGpuNodes": 4}, "k8s-resource-requests": "disabled"}`).

Exit codes: 0 no mandatory violation, 1 mandatory violations, 2 a stack cannot be rendered (bad
stack config, the program failed) or the policy config is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import inspect
import json
import re
import runpy
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError  # what args.not_applicable() raises
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from components.config import ConfigError
from tools.render import (
    REPO,
    RenderedResource,
    RenderError,
    Rendering,
    apply_overrides,
    read_stack_file,
    render_program,
    render_stack,
    stack_names,
    unwrap_secrets,
)

PACK_DIR = REPO / "policies"
CONFIG_DIR = PACK_DIR / "config"
PACK_DEFAULT_LEVEL = EnforcementLevel.ADVISORY  # as in policies/__main__.py
FORMATS = ("table", "markdown", "sarif")
MARKDOWN_MARKER = "<!-- chatchat-policy-check -->"


class PolicyConfigError(Exception):
    """The policy config file is not what the pack accepts."""


class PolicyCrash(Exception):
    """A policy raised instead of reporting: a bug in the pack, not a violation."""


@dataclass(frozen=True)
class Violation:
    stack: str
    policy: str
    level: str  # "mandatory" | "advisory"
    message: str
    urn: str | None

    @property
    def resource(self) -> str:
        """`cs.NodePool gpu-a10` from the URN; `(stack)` for a stack-wide violation."""
        parts = (self.urn or "").split("::", 3)
        if len(parts) != 4:
            return "(stack)"
        type_token = parts[2].split("$")[-1]  # the URN qualifies the type with its parents'
        token = type_token.split(":")
        short = f"{token[1].split('/')[0]}.{token[2]}" if len(token) == 3 else type_token
        return f"{short} {parts[3]}"


@dataclass
class Report:
    stack: str
    violations: list[Violation] = field(default_factory=list)
    resources: int = 0
    error: str | None = None  # why the stack could not be rendered

    def count(self, level: str) -> int:
        return sum(1 for v in self.violations if v.level == level)


# --- the pack -------------------------------------------------------------------------------

def load_policies() -> list[Policy]:
    """The pack's policy objects, imported as `pulumi preview` imports them (pack dir on path)."""
    if str(PACK_DIR) not in sys.path:
        sys.path.append(str(PACK_DIR))
    return list(importlib.import_module("chatchat_policies").all_policies)


@dataclass
class PolicySettings:
    levels: dict[str, EnforcementLevel]
    properties: dict[str, dict[str, Any]]


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(value)
    except ValueError:
        allowed = ", ".join(level.value for level in EnforcementLevel)
        raise PolicyConfigError(f"{where}: enforcement level {value!r} is not one of {allowed}")\
            from None


def parse_policy_config(raw: Mapping[str, Any], policies: Sequence[Policy]) -> PolicySettings:
    """Resolve a `--policy-pack-config` document against the pack, as the Pulumi CLI does."""
    by_name = {p.name: p for p in policies}
    default: EnforcementLevel | None = None
    if "all" in raw:
        value = raw["all"]
        default = _level(value.get("enforcementLevel") if isinstance(value, Mapping) else value,
                         "all")
    levels: dict[str, EnforcementLevel] = {}
    properties: dict[str, dict[str, Any]] = {}
    for name, policy in by_name.items():
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            value = {"enforcementLevel": value}
        level = value.get("enforcementLevel")
        levels[name] = (_level(level, name) if level is not None
                        else default or policy.enforcement_level or PACK_DEFAULT_LEVEL)
        props = {k: v for k, v in value.items() if k != "enforcementLevel"}
        schema = policy.config_schema.properties if policy.config_schema else {}
        unknown = sorted(set(props) - set(schema))
        if unknown:
            known = ", ".join(sorted(schema)) or "none"
            raise PolicyConfigError(f"{name}: unknown config key(s) {', '.join(unknown)} "
                                    f"(known: {known})")
        document = {"type": "object", "properties": schema,
                    "required": list(policy.config_schema.required or [])
                    if policy.config_schema else []}
        try:
            jsonschema.validate(props, document)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(config)"
            raise PolicyConfigError(f"{name}.{path}: {exc.message}") from None
        defaults = {k: s["default"] for k, s in schema.items() if "default" in s}
        properties[name] = {**defaults, **props}
    unknown_policies = sorted(set(raw) - set(by_name) - {"all"})
    if unknown_policies:
        raise PolicyConfigError(f"unknown policy name(s) {', '.join(unknown_policies)}; the pack "
                                f"has: {', '.join(sorted(by_name))}")
    return PolicySettings(levels, properties)


def _default_level(policy: Policy) -> EnforcementLevel:
    return policy.enforcement_level or PACK_DEFAULT_LEVEL


def settings_for(stack: str, policies: Sequence[Policy],
                 explicit: Path | None = None) -> PolicySettings:
    """The policy config of a stack: `explicit`, else `policies/config/<stack>.json` if any (the
    file CI also hands `pulumi preview --policy-pack-config`), else the pack's defaults."""
    path = explicit or CONFIG_DIR / f"{stack}.json"
    if explicit is None and not path.is_file():
        return parse_policy_config({}, policies)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyConfigError(f"{path}: must be a JSON object of policy name -> config")
    try:
        return parse_policy_config(raw, policies)
    except PolicyConfigError as exc:
        raise PolicyConfigError(f"{path}: {exc}") from None


# --- engine stand-in ------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def _seconds(duration: Any) -> float:
    """Go duration text (`10m`, `1h30m`) as seconds, the unit the engine sends."""
    scale = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * scale[u] for n, u in _DURATION.findall(str(duration or "")))


def _options(resource: RenderedResource) -> PolicyResourceOptions:
    opts = resource.options
    timeouts = opts.get("customTimeouts") or {}
    return PolicyResourceOptions(
        protect=bool(opts.get("protect")),
        ignore_changes=list(opts.get("ignoreChanges") or []),
        delete_before_replace=opts.get("deleteBeforeReplace"),
        aliases=[a for a in opts.get("aliases") or [] if isinstance(a, str)],
        custom_timeouts=PolicyCustomTimeouts(_seconds(timeouts.get("create")),
                                             _seconds(timeouts.get("update")),
                                             _seconds(timeouts.get("delete"))),
        additional_secret_outputs=list(opts.get("additionalSecretOutputs") or []),
        parent=resource.parent,
    )


def _provider(resource: RenderedResource,
              by_urn: Mapping[str, RenderedResource]) -> PolicyProviderResource | None:
    reference = resource.options.get("provider")  # "<provider urn>::<provider id>"
    provider = by_urn.get(reference.rsplit("::", 1)[0]) if reference else None
    if provider is None:
        return None
    return PolicyProviderResource(provider.type, unknown_checking_proxy(provider.plain_inputs()),
                                  provider.urn, provider.name)


def _stack_resources(rendering: Rendering) -> list[PolicyResource]:
    """Stack policies see each resource's state (inputs plus computed outputs), secrets plain."""
    by_urn = rendering.by_urn()
    made: dict[str, PolicyResource] = {}
    for r in rendering.resources:
        state = unwrap_secrets(r.outputs) if r.outputs else r.plain_inputs()
        made[r.urn] = PolicyResource(r.type, unknown_checking_proxy(state), r.urn, r.name,
                                     _options(r), _provider(r, by_urn), None, [], {})
    for r in rendering.resources:
        resource = made[r.urn]
        resource.parent = made.get(r.parent) if r.parent else None
        resource.dependencies = [made[d] for d in r.dependencies if d in made]
        resource.property_dependencies = {k: [made[d] for d in v if d in made]
                                          for k, v in r.property_dependencies.items()}
    return list(made.values())


async def _await(awaitable: Any) -> None:
    await awaitable


def check_rendering(rendering: Rendering, policies: Sequence[Policy],
                    settings: PolicySettings | None = None) -> list[Violation]:
    """Every policy over a rendered stack, as the engine's analyzer calls would run them."""
    settings = settings or parse_policy_config({}, policies)
    by_urn = rendering.by_urn()
    violations: list[Violation] = []
    stack_resources: list[PolicyResource] | None = None
    for policy in policies:
        level = settings.levels[policy.name]
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY  # a violation left after remediation blocks
        config = dict(settings.properties.get(policy.name, {}))
        if isinstance(policy, ResourceValidationPolicy):
            for r in rendering.resources:
                args = ResourceValidationArgs(r.type, unknown_checking_proxy(r.plain_inputs()),
                                              r.urn, r.name, _options(r), _provider(r, by_urn),
                                              config)
                violations += _validate(policy, level, args, rendering.stack, r.urn)
        elif isinstance(policy, StackValidationPolicy):
            if stack_resources is None:
                stack_resources = _stack_resources(rendering)
            violations += _validate(policy, level, StackValidationArgs(stack_resources, config),
                                    rendering.stack, None)
    return violations


def _validate(policy: Policy, level: EnforcementLevel, args: Any, stack: str,
              resource_urn: str | None) -> list[Violation]:
    """One policy call with a real `report_violation`; a resource policy's violations are always
    on that resource, as in the engine."""
    found: list[Violation] = []

    def report_violation(message: str, urn: str | None = None) -> None:
        found.append(Violation(stack, policy.name, level.value, message, resource_urn or urn))

    try:
        result = policy.validate(args, report_violation)
        if inspect.isawaitable(result):
            asyncio.run(_await(result))
    except _NotApplicableError:
        return []
    except UnknownValueError as exc:  # the engine reports these as advisory, and so do we
        return [Violation(stack, policy.name, EnforcementLevel.ADVISORY.value,
                          f"can't run policy during preview: {exc.message}", resource_urn)]
    except Exception as exc:
        where = f" on {resource_urn}" if resource_urn else ""
        raise PolicyCrash(f"policy {policy.name} failed{where}: {type(exc).__name__}: {exc}") \
            from exc
    return found


def check_stack(stack: str, policies: Sequence[Policy], settings: PolicySettings,
                overrides: Mapping[str, Any] | None = None, program: Path | None = None) -> Report:
    """Render one stack (or `program`, a Pulumi program file, under that stack's config) and
    check it; a stack that cannot be rendered comes back with `error` set."""
    try:
        if program is None:
            rendering = render_stack(stack, overrides)
        else:
            config = apply_overrides(read_stack_file(stack), overrides or {})
            rendering = render_program(
                lambda: runpy.run_path(str(program), run_name="__pulumi_program__"), config, stack)
    except ConfigError as exc:
        return Report(stack, error=f"invalid stack config: {exc}")
    except (RenderError, FileNotFoundError, ValueError) as exc:
        return Report(stack, error=f"cannot render: {exc}")
    return Report(stack, check_rendering(rendering, policies, settings),
                  resources=len(rendering.resources))


# --- output ---------------------------------------------------------------------------------

def _summary(report: Report) -> str:
    if report.error:
        return f"stack {report.stack}: NOT CHECKED, {report.error}"
    return (f"stack {report.stack}: {report.resources} resources, "
            f"{report.count('mandatory')} mandatory and {report.count('advisory')} advisory "
            f"violation(s)")


def format_table(reports: Iterable[Report]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(_summary(report))
        if report.violations:
            rows = [(v.level.upper(), v.policy, v.resource, v.message.replace("\n", " "))
                    for v in report.violations]
            widths = [max(len(row[i]) for row in [*rows, ("LEVEL", "POLICY", "RESOURCE", "")])
                      for i in range(3)]
            lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(
                ("LEVEL", "POLICY", "RESOURCE"), widths, strict=True)) + "  MESSAGE")
            for row in sorted(rows, key=lambda row: (row[0] != "MANDATORY", row[1:])):
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(
                    row[:3], widths, strict=True)) + "  " + row[3])
        lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def format_markdown(reports: Iterable[Report]) -> str:
    reports = list(reports)
    mandatory = sum(r.count("mandatory") for r in reports)
    failed = [r.stack for r in reports if r.error]
    verdict = ("cannot check " + ", ".join(failed) if failed
               else f"{mandatory} mandatory violation(s)" if mandatory else "passed")
    lines = [MARKDOWN_MARKER, f"## Policy check: {verdict}", ""]
    for report in reports:
        lines += [f"### Stack `{report.stack}`", "", _md(_summary(report)), ""]
        if report.violations:
            lines += ["| Level | Policy | Resource | Message |", "|---|---|---|---|"]
            for v in sorted(report.violations, key=lambda v: (v.level != "mandatory", v.policy)):
                icon = ":x:" if v.level == "mandatory" else ":warning:"
                lines.append(f"| {icon} {v.level} | `{v.policy}` | `{_md(v.resource)}` | "
                             f"{_md(v.message)} |")
            lines.append("")
    return "\n".join(lines)


_SARIF_LEVEL = {"mandatory": "error", "advisory": "warning", "disabled": "none",
                "remediate": "error"}


def format_sarif(reports: Iterable[Report], policies: Sequence[Policy]) -> str:
    """SARIF 2.1.0: one run, a rule per policy, a result per violation located at the stack file
    (code scanning needs a file) and, logically, at the resource's URN."""
    rule_index = {p.name: i for i, p in enumerate(policies)}
    rules = [{
        "id": p.name,
        "name": "".join(part.title() for part in p.name.split("-")),
        "shortDescription": {"text": p.description},
        "fullDescription": {"text": p.description},
        "defaultConfiguration": {"level": _SARIF_LEVEL[_default_level(p).value]},
        "properties": {"enforcementLevel": _default_level(p).value,
                       "kind": "stack" if isinstance(p, StackValidationPolicy) else "resource"},
    } for p in policies]
    results = []
    for report in reports:
        for v in report.violations:
            location: dict[str, Any] = {"physicalLocation": {
                "artifactLocation": {"uri": f"stacks/Pulumi.{v.stack}.yaml",
                                     "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": 1}}}
            if v.urn:
                location["logicalLocations"] = [{"fullyQualifiedName": v.urn,
                                                 "name": v.resource, "kind": "resource"}]
            fingerprint = hashlib.sha256(f"{v.policy}|{v.urn}|{v.message}".encode()).hexdigest()
            results.append({
                "ruleId": v.policy,
                "ruleIndex": rule_index[v.policy],
                "level": _SARIF_LEVEL[v.level],
                "message": {"text": f"[{v.stack}] {v.message}"},
                "locations": [location],
                "partialFingerprints": {"chatchatPolicyViolation/v1": fingerprint},
                "properties": {"stack": v.stack, "enforcementLevel": v.level},
            })
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "chatchat-policy-pack", "version": _pack_version(),
                                "rules": rules}},
            "results": results,
            "invocations": [{"executionSuccessful": not any(r.error for r in reports),
                             "toolExecutionNotifications": [
                                 {"level": "error", "message": {"text": _summary(r)}}
                                 for r in reports if r.error]}],
        }],
    }
    return json.dumps(document, indent=2)


def _pack_version() -> str:
    document = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    return str(document.get("version", "0.0.0"))


# --- command line ---------------------------------------------------------------------------

def _parse_set(values: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PolicyConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. llm.pod.replicas=2")
        overrides[key] = yaml.safe_load(value)
    return overrides


def exit_code(reports: Sequence[Report]) -> int:
    if any(r.error for r in reports):
        return 2
    return 1 if any(r.count("mandatory") for r in reports) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", action="append", help="stack to check (repeatable)")
    which.add_argument("--all", action="store_true", help="every stack in stacks/")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", type=Path, help="write the report here (default: stdout)")
    parser.add_argument("--config", type=Path,
                        help="policy config JSON for every stack checked, as for pulumi preview "
                             "--policy-pack-config (default: policies/config/<stack>.json where "
                             "it exists)")
    parser.add_argument("--program", type=Path,
                        help="check this Pulumi program file (e.g. resources declared by hand) "
                             "instead of __main__.py, under each stack's config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a stack config key for this check (YAML value)")
    args = parser.parse_args(argv)

    policies = load_policies()
    stacks = stack_names() if args.all else args.stack
    try:
        settings = {s: settings_for(s, policies, args.config) for s in stacks}
        overrides = _parse_set(args.set)
    except PolicyConfigError as exc:
        print(f"policy config: {exc}", file=sys.stderr)
        return 2

    try:
        reports = [check_stack(s, policies, settings[s], overrides, args.program)
                   for s in stacks]
    except PolicyCrash as exc:
        print(f"policy pack error: {exc}", file=sys.stderr)
        return 2
    if args.format == "sarif":
        text = format_sarif(reports, policies)
    elif args.format == "markdown":
        text = format_markdown(reports)
    else:
        text = format_table(reports)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        for report in reports:
            print(_summary(report), file=sys.stderr)
    else:
        print(text)
    for report in reports:
        if report.error:
            print(f"stack {report.stack}: {report.error}", file=sys.stderr)
    return exit_code(reports)


if __name__ == "__main__":
    sys.exit(main())
