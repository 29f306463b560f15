"""Reading resource properties the way the engine hands them to a policy.

`props` is a read-only Mapping (a proxy that raises on values unknown during preview), lists are
Sequences; never assume `dict`/`list`. Everything here reads properties only: the pack must guard
resources declared by hand as well as ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

UNKNOWN = object()  # a value the engine cannot know during preview

DEFAULT_PRODUCTION_STACKS = ["prod", "production"]
OPEN_TO_ALL = {"0.0.0.0/0", "0.0.0.0", "::/0"}

# Pod template location per Kubernetes workload kind (type token -> path to the pod template).
_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
    "kubernetes:core/v1:Pod": (),
}
WORKLOAD_TYPES = tuple(_POD_TEMPLATE_PATHS)


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """A Sequence property as a list; a missing value is empty, a lone string one item."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return []


def dig(value: Any, *path: str) -> Any:
    for key in path:
        value = mapping(value).get(key)
    return value


def known(value: Any, *path: str) -> Any:
    """`dig`, but UNKNOWN instead of raising for a value computed during preview. Stack policies
    use it so that one unknown id does not stop the check of every other resource."""
    try:
        return dig(value, *path)
    except UnknownValueError:
        return UNKNOWN


def stack_of(urn: str) -> str:
    """The stack a resource belongs to, from its URN (`urn:pulumi:<stack>::<project>::...`)."""
    head = urn.split("::", 1)[0]
    return head.rsplit(":", 1)[-1] if head.startswith("urn:pulumi:") else ""


def production_schema() -> dict[str, Any]:
    return {
        "productionStacks": {
            "type": "array",
            "items": {"type": "string"},
            "default": DEFAULT_PRODUCTION_STACKS,
            "description": "Production stacks: by stack name, or by a resource's `stack` tag.",
        }
    }


def is_production(urn: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    stacks = set(config.get("productionStacks") or DEFAULT_PRODUCTION_STACKS)
    tag = mapping(props.get("tags")).get("stack")
    return stack_of(urn) in stacks or (isinstance(tag, str) and tag in stacks)


# --- declaring policies -----------------------------------------------------------------------


class Report(Protocol):
    """The violation callback: a message, and for a stack policy the URN of the resource."""

    def __call__(self, message: str, urn: str | None = None) -> None: ...


@dataclass(frozen=True)
class Pods:
    """The pod template of a workload, and how a reader finds it with kubectl."""

    who: str  # `Deployment chatchat/llm-chatchat`
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]


ResourceCheck = Callable[[ResourceValidationArgs, Report], None]
PodCheck = Callable[[Pods, ResourceValidationArgs, Report], None]
StackCheck = Callable[[StackValidationArgs, Report], None]
ConfigProperties = dict[str, dict[str, Any]]


def _report(report: ReportViolation) -> Report:
    # pulumi_policy types the callback `Callable[[str, Optional[str]], None]`, which cannot say
    # that the URN is optional; every callback the engine and our runner pass takes it as such.
    def call(message: str, urn: str | None = None) -> None:
        report(message, urn)

    return call


def _schema(config: ConfigProperties | None) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=config) if config else None


def resource_policy(
    name: str,
    level: EnforcementLevel,
    description: str,
    *,
    types: Sequence[str] | None = None,
    config: ConfigProperties | None = None,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Declare `check(args, report)` as a resource policy, called for `types` only if given."""

    def declare(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if types is None or args.resource_type in types:
                check(args, _report(report))

        return ResourceValidationPolicy(
            name=name,
            description=description,
            validate=validate,
            enforcement_level=level,
            config_schema=_schema(config),
        )

    return declare


def pod_policy(
    name: str,
    level: EnforcementLevel,
    description: str,
    *,
    config: ConfigProperties | None = None,
) -> Callable[[PodCheck], ResourceValidationPolicy]:
    """Declare `check(pods, args, report)` as a resource policy over every workload's pods."""

    def declare(check: PodCheck) -> ResourceValidationPolicy:
        def on_pods(args: ResourceValidationArgs, report: Report) -> None:
            template = pod_template(args.resource_type, args.props)
            if template is not None:
                who = k8s_name(args.resource_type, args.props, args.name)
                check(Pods(who, *template), args, report)

        return resource_policy(name, level, description, config=config)(on_pods)

    return declare


def stack_policy(
    name: str,
    level: EnforcementLevel,
    description: str,
    *,
    config: ConfigProperties | None = None,
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Declare `check(args, report)` as a stack policy; it reports with each resource's URN."""

    def declare(check: StackCheck) -> StackValidationPolicy:
        return StackValidationPolicy(
            name=name,
            description=description,
            enforcement_level=level,
            config_schema=_schema(config),
            validate=lambda args, report: check(args, _report(report)),
        )

    return declare


# --- Alibaba Cloud --------------------------------------------------------------------------


def node_pool_labels(props: Mapping[str, Any]) -> dict[str, str]:
    """cs NodePool `labels` is a list of {key, value}."""
    return {
        str(label.get("key")): str(label.get("value", ""))
        for label in map(mapping, items(props.get("labels")))
        if label.get("key")
    }


def describe(resource_type: str, name: str) -> str:
    """`alicloud:cs/nodePool:NodePool` named `gpu-a10` -> `cs.NodePool gpu-a10`."""
    parts = resource_type.split(":")
    if len(parts) == 3:
        module = parts[1].split("/")[0]
        return f"{module}.{parts[2]} {name}"
    return f"{resource_type} {name}"


# --- Kubernetes -----------------------------------------------------------------------------


def k8s_name(resource_type: str, props: Mapping[str, Any], fallback: str) -> str:
    """`Deployment chatchat/llm-chatchat`: what a reader finds with kubectl."""
    metadata = mapping(props.get("metadata"))
    kind = resource_type.rsplit(":", 1)[-1]
    name = metadata.get("name") or fallback
    namespace = metadata.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def namespace_of(props: Mapping[str, Any]) -> str:
    """The object's namespace; `(unknown)` while a new Namespace's name is computed."""
    namespace = known(props, "metadata", "namespace")
    return "(unknown)" if namespace is UNKNOWN else str(namespace or "default")


def pod_template(
    resource_type: str, props: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(pod metadata, pod spec) of a workload, or None for a type that has no pods."""
    path = _POD_TEMPLATE_PATHS.get(resource_type)
    if path is None:
        return None
    template = mapping(dig(props, *path)) if path else props
    return mapping(template.get("metadata")), mapping(template.get("spec"))


def containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from map(mapping, items(pod_spec.get(key)))


def resource_quantity(container: Mapping[str, Any], resource: str) -> str | None:
    resources = mapping(container.get("resources"))
    for section in ("limits", "requests"):
        value = mapping(resources.get(section)).get(resource)
        if value not in (None, ""):
            return str(value)
    return None


def node_selector_terms(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Required node-affinity terms (any one must match)."""
    return [
        mapping(t)
        for t in items(
            dig(
                pod_spec,
                "affinity",
                "nodeAffinity",
                "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms",
            )
        )
    ]


def selects_node(pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a node with `labels` satisfies the pod's nodeSelector and required affinity."""
    for key, value in mapping(pod_spec.get("nodeSelector")).items():
        if labels.get(key) != str(value):
            return False
    terms = node_selector_terms(pod_spec)
    return not terms or any(_term_matches(term, labels) for term in terms)


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in map(mapping, items(term.get("matchExpressions"))):
        key, op = str(expr.get("key")), expr.get("operator")
        values = [str(v) for v in items(expr.get("values"))]
        present, value = key in labels, labels.get(key)
        if op == "In":
            ok = present and value in values
        elif op == "NotIn":
            ok = not present or value not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        elif op in ("Gt", "Lt") and values:
            have, bound = number(value), number(values[0])
            ok = (
                have is not None
                and bound is not None
                and (have > bound if op == "Gt" else have < bound)
            )
        else:
            ok = False
        if not ok:
            return False
    return True


def tolerates(pod_spec: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    effect = taint.get("effect") or "NoSchedule"
    if effect == "PreferNoSchedule":
        return True
    for tol in map(mapping, items(pod_spec.get("tolerations"))):
        if tol.get("effect") and tol.get("effect") != effect:
            continue
        if tol.get("operator") == "Exists" and (
            not tol.get("key") or tol.get("key") == taint.get("key")
        ):
            return True
        if tol.get("key") == taint.get("key") and str(tol.get("value") or "") == str(
            taint.get("value") or ""
        ):
            return True
    return False


def number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_tag(image: str) -> str | None:
    """The tag of an image reference, None when untagged (a registry port is not a tag)."""
    if IMAGE_DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None
