"""The CrossGuard pack in `policies/` run over stacks rendered without a cloud.

Each stack is rendered with `tools.offline.engine.render_stack`; every resource goes through the
pack's own policy objects as real `pulumi_policy` `ResourceValidationArgs` /
`StackValidationArgs`, so a policy behaves here as under `pulumi preview --policy-pack policies`.
The policy config is the JSON document `pulumi preview --policy-pack-config` takes (`{"all":
"mandatory", "gpu-node-cap": {"maxGpuNodes": 4}, "k8s-resource-requests": "disabled"}`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import runpy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
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

from components.config import ConfigError
from tools.offline.engine import (
    RenderedResource,
    RenderError,
    Rendering,
    render_program,
    render_stack,
)
from tools.offline.sdk_hooks import PolicyNotApplicable, PolicyUnknownValue, policy_properties
from tools.offline.stack_files import REPO, STACKS_DIR, apply_overrides, read_stack_file
from tools.offline.wire import unwrap_secrets

PACK_DIR = REPO / "policies"
CONFIG_DIR = PACK_DIR / "config"
PACK_DEFAULT_LEVEL = EnforcementLevel.ADVISORY  # as in policies/__main__.py


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
        raise PolicyConfigError(
            f"{where}: enforcement level {value!r} is not one of {allowed}"
        ) from None


def parse_policy_config(raw: Mapping[str, Any], policies: Sequence[Policy]) -> PolicySettings:
    """Resolve a `--policy-pack-config` document against the pack, as the Pulumi CLI does."""
    by_name = {p.name: p for p in policies}
    default: EnforcementLevel | None = None
    if "all" in raw:
        value = raw["all"]
        default = _level(
            value.get("enforcementLevel") if isinstance(value, Mapping) else value, "all"
        )
    levels: dict[str, EnforcementLevel] = {}
    properties: dict[str, dict[str, Any]] = {}
    for name, policy in by_name.items():
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            value = {"enforcementLevel": value}
        level = value.get("enforcementLevel")
        levels[name] = (
            _level(level, name)
            if level is not None
            else default or policy.enforcement_level or PACK_DEFAULT_LEVEL
        )
        props = {k: v for k, v in value.items() if k != "enforcementLevel"}
        schema = policy.config_schema.properties if policy.config_schema else {}
        unknown = sorted(set(props) - set(schema))
        if unknown:
            known = ", ".join(sorted(schema)) or "none"
            raise PolicyConfigError(
                f"{name}: unknown config key(s) {', '.join(unknown)} (known: {known})"
            )
        document = {
            "type": "object",
            "properties": schema,
            "required": list(policy.config_schema.required or []) if policy.config_schema else [],
        }
        try:
            jsonschema.validate(props, document)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(config)"
            raise PolicyConfigError(f"{name}.{path}: {exc.message}") from None
        defaults = {k: s["default"] for k, s in schema.items() if "default" in s}
        properties[name] = {**defaults, **props}
    unknown_policies = sorted(set(raw) - set(by_name) - {"all"})
    if unknown_policies:
        raise PolicyConfigError(
            f"unknown policy name(s) {', '.join(unknown_policies)}; the pack "
            f"has: {', '.join(sorted(by_name))}"
        )
    return PolicySettings(levels, properties)


def default_level(policy: Policy) -> EnforcementLevel:
    return policy.enforcement_level or PACK_DEFAULT_LEVEL


def settings_for(
    stack: str, policies: Sequence[Policy], explicit: Path | None = None
) -> PolicySettings:
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
        custom_timeouts=PolicyCustomTimeouts(
            _seconds(timeouts.get("create")),
            _seconds(timeouts.get("update")),
            _seconds(timeouts.get("delete")),
        ),
        additional_secret_outputs=list(opts.get("additionalSecretOutputs") or []),
        parent=resource.parent,
    )


def _provider(
    resource: RenderedResource, by_urn: Mapping[str, RenderedResource]
) -> PolicyProviderResource | None:
    reference = resource.options.get("provider")  # "<provider urn>::<provider id>"
    provider = by_urn.get(reference.rsplit("::", 1)[0]) if reference else None
    if provider is None:
        return None
    return PolicyProviderResource(
        provider.type, policy_properties(provider.plain_inputs()), provider.urn, provider.name
    )


def _stack_resources(rendering: Rendering) -> list[PolicyResource]:
    """Stack policies see each resource's state (inputs plus computed outputs), secrets plain."""
    by_urn = rendering.by_urn()
    made: dict[str, PolicyResource] = {}
    for r in rendering.resources:
        state = unwrap_secrets(r.outputs) if r.outputs else r.plain_inputs()
        made[r.urn] = PolicyResource(
            r.type,
            policy_properties(state),
            r.urn,
            r.name,
            _options(r),
            _provider(r, by_urn),
            None,
            [],
            {},
        )
    for r in rendering.resources:
        resource = made[r.urn]
        resource.parent = made.get(r.parent) if r.parent else None
        resource.dependencies = [made[d] for d in r.dependencies if d in made]
        resource.property_dependencies = {
            k: [made[d] for d in v if d in made] for k, v in r.property_dependencies.items()
        }
    return list(made.values())


async def _await(awaitable: Any) -> None:
    await awaitable


def check_rendering(
    rendering: Rendering, policies: Sequence[Policy], settings: PolicySettings | None = None
) -> list[Violation]:
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
                args = ResourceValidationArgs(
                    r.type,
                    policy_properties(r.plain_inputs()),
                    r.urn,
                    r.name,
                    _options(r),
                    _provider(r, by_urn),
                    config,
                )
                violations += _validate(policy, level, args, rendering.stack, r.urn)
        elif isinstance(policy, StackValidationPolicy):
            if stack_resources is None:
                stack_resources = _stack_resources(rendering)
            violations += _validate(
                policy, level, StackValidationArgs(stack_resources, config), rendering.stack, None
            )
    return violations


def _validate(
    policy: ResourceValidationPolicy | StackValidationPolicy,
    level: EnforcementLevel,
    args: Any,
    stack: str,
    resource_urn: str | None,
) -> list[Violation]:
    """One policy call with a real `report_violation`; a resource policy's violations are always
    on that resource, as in the engine."""
    found: list[Violation] = []

    def report_violation(message: str, urn: str | None = None) -> None:
        found.append(Violation(stack, policy.name, level.value, message, resource_urn or urn))

    try:
        result = policy.validate(args, report_violation)
        if inspect.isawaitable(result):
            asyncio.run(_await(result))
    except PolicyNotApplicable:
        return []
    except PolicyUnknownValue as exc:  # the engine reports these as advisory, and so do we
        return [
            Violation(
                stack,
                policy.name,
                EnforcementLevel.ADVISORY.value,
                f"can't run policy during preview: {exc.message}",
                resource_urn,
            )
        ]
    except Exception as exc:
        where = f" on {resource_urn}" if resource_urn else ""
        raise PolicyCrash(
            f"policy {policy.name} failed{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return found


def check_stack(
    stack: str,
    policies: Sequence[Policy],
    settings: PolicySettings,
    overrides: Mapping[str, Any] | None = None,
    program: Path | None = None,
    stacks_dir: Path = STACKS_DIR,
) -> Report:
    """Render one stack (or `program`, a Pulumi program file, under that stack's config) and
    check it; a stack that cannot be rendered comes back with `error` set."""
    try:
        if program is None:
            rendering = render_stack(stack, overrides, stacks_dir)
        else:
            config = apply_overrides(read_stack_file(stack, stacks_dir), overrides or {})
            rendering = render_program(
                lambda: runpy.run_path(str(program), run_name="__pulumi_program__"), config, stack
            )
    except ConfigError as exc:
        return Report(stack, error=f"invalid stack config: {exc}")
    except (RenderError, FileNotFoundError, ValueError) as exc:
        return Report(stack, error=f"cannot render: {exc}")
    return Report(
        stack, check_rendering(rendering, policies, settings), resources=len(rendering.resources)
    )
