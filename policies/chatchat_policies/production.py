"""Production stacks: redundancy and protection of what cannot be rebuilt from code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    StackValidationArgs,
)

from .common import (
    Pods,
    Report,
    describe,
    is_production,
    k8s_name,
    mapping,
    namespace_of,
    number,
    pod_policy,
    pod_template,
    production_schema,
    resource_policy,
    stack_of,
    stack_policy,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
VSWITCH = "alicloud:vpc/switch:Switch"
MANAGED_KUBERNETES = "alicloud:cs/managedKubernetes:ManagedKubernetes"
# Stateful resources without a deletion-protection property of their own: `protect` guards them.
STATEFUL_TYPES = (
    "alicloud:gpdb/instance:Instance",
    "alicloud:nas/fileSystem:FileSystem",
    "alicloud:oss/bucket:Bucket",
)
COMPONENT_LABEL = "app.kubernetes.io/component"


@pod_policy(
    "production-chat-replicas",
    EnforcementLevel.ADVISORY,
    "Production stacks run at least two chat replicas.",
    config={
        **production_schema(),
        "minChatReplicas": {"type": "integer", "default": 2, "minimum": 1},
    },
)
def production_chat_replicas(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    config = args.get_config()
    if args.resource_type != DEPLOYMENT or not is_production(args.urn, args.props, config):
        return
    if mapping(pods.metadata.get("labels")).get(COMPONENT_LABEL) != "chat":
        return
    minimum = config.get("minChatReplicas", 2)
    replicas = number(mapping(args.props.get("spec")).get("replicas"))
    count = 1 if replicas is None else int(replicas)
    if count < minimum:
        report(
            f"{pods.who} has {count} replica(s) in production stack {stack_of(args.urn)}. "
            f"Fix: set chat.pod.replicas to {minimum} or more (with a ReadWriteMany "
            f"knowledge-base volume)."
        )


@pod_policy(
    "production-chat-sign-in",
    EnforcementLevel.MANDATORY,
    "Production chat requires sign-in through an OpenID Connect provider, not one shared key.",
    config=production_schema(),
)
def production_chat_sign_in(pods: Pods, args: ResourceValidationArgs, report: Report) -> None:
    config = args.get_config()
    if args.resource_type != DEPLOYMENT or not is_production(args.urn, args.props, config):
        return
    if mapping(pods.metadata.get("labels")).get(COMPONENT_LABEL) != "chat":
        return
    for container in pods.spec.get("containers") or []:
        env = {
            mapping(e).get("name"): mapping(e).get("value")
            for e in mapping(container).get("env") or []
        }
        if str(env.get("OIDC_ISSUER") or "").startswith("https://") and env.get("OIDC_CLIENT_ID"):
            return
    report(
        f"{pods.who} in production stack {stack_of(args.urn)} has no OpenID Connect sign-in: "
        "whoever holds the shared CHAT_API_KEY reads and deletes every knowledge base. Fix: set "
        "chat.signIn.issuer and chat.signIn.clientId (and the secret oidcClientSecret; see "
        "app_images/chat/README.md, Sign-in and permissions)."
    )


@stack_policy(
    "production-multi-zone",
    EnforcementLevel.ADVISORY,
    "Production stacks spread their vSwitches over at least two zones.",
    config={**production_schema(), "minZones": {"type": "integer", "default": 2, "minimum": 1}},
)
def production_multi_zone(args: StackValidationArgs, report: Report) -> None:
    config = args.get_config()
    switches = [r for r in args.resources if r.resource_type == VSWITCH]
    if not switches or not is_production(switches[0].urn, switches[0].props, config):
        return
    zones = sorted({str(s.props.get("zoneId")) for s in switches if s.props.get("zoneId")})
    minimum = config.get("minZones", 2)
    if len(zones) < minimum:
        report(
            f"production stack {stack_of(switches[0].urn)} has vSwitches in {len(zones)} "
            f"zone(s) ({', '.join(zones) or 'none'}). Fix: list {minimum} or more zones "
            f"(zones and network.vswitchCidrs) so a zone outage leaves the chatbot up.",
            switches[0].urn,
        )


@resource_policy(
    "production-deletion-protection",
    EnforcementLevel.ADVISORY,
    "In production the cluster has deletion protection and stateful resources (ADB, NAS, OSS "
    "bucket) are protected.",
    types=[MANAGED_KUBERNETES, *STATEFUL_TYPES],
    config=production_schema(),
)
def production_deletion_protection(args: ResourceValidationArgs, report: Report) -> None:
    if not is_production(args.urn, args.props, args.get_config()):
        return
    what = describe(args.resource_type, args.name)
    protected = args.props.get("deletionProtection") is True
    if args.resource_type == MANAGED_KUBERNETES and not protected:
        report(
            f"{what}: deletionProtection is off in production. Fix: set deletion_protection=True."
        )
    if args.resource_type in STATEFUL_TYPES and not args.opts.protect:
        report(
            f"{what} is not protected in production; a replace or destroy would lose data. "
            f"Fix: declare it with pulumi.ResourceOptions(protect=True)."
        )


def _least_replicas(deployment: PolicyResource, scaled: list[PolicyResource]) -> int:
    """What the Deployment runs at the least: a KEDA ScaledObject's minReplicaCount when one
    targets it (KEDA owns spec.replicas then), else spec.replicas (default 1)."""
    props = mapping(deployment.props)
    name = mapping(props.get("metadata")).get("name")
    for obj in scaled:
        spec = mapping(mapping(obj.props).get("spec"))
        target = mapping(spec.get("scaleTargetRef"))
        if target.get("name") == name and target.get("kind", "Deployment") == "Deployment":
            least = number(spec.get("minReplicaCount"))
            return 0 if least is None else int(least)  # KEDA's default minimum is 0
    replicas = number(mapping(props.get("spec")).get("replicas"))
    return 1 if replicas is None else int(replicas)


def _budget_covers(budget: PolicyResource, namespace: str, labels: Mapping[str, Any]) -> bool:
    props = mapping(budget.props)
    if namespace_of(props) != namespace:
        return False
    selector = mapping(mapping(props.get("spec")).get("selector")).get("matchLabels")
    wanted = mapping(selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


@stack_policy(
    "production-llm-disruption-budget",
    EnforcementLevel.MANDATORY,
    "Production: an llm that runs two or more replicas at the least has a PodDisruptionBudget, "
    "so that a node drain (pool upgrade, autoscaler scale-down) cannot evict every replica at "
    "once.",
    config=production_schema(),
)
def production_llm_disruption_budget(args: StackValidationArgs, report: Report) -> None:
    config = args.get_config()
    scaled = [r for r in args.resources if r.resource_type == SCALED_OBJECT]
    budgets = [r for r in args.resources if r.resource_type == PDB]
    for deployment in args.resources:
        if deployment.resource_type != DEPLOYMENT:
            continue
        if not is_production(deployment.urn, deployment.props, config):
            continue
        template = pod_template(deployment.resource_type, deployment.props)
        labels = mapping(template[0].get("labels")) if template else {}
        if labels.get(COMPONENT_LABEL) != "llm":
            continue
        least = _least_replicas(deployment, scaled)
        namespace = namespace_of(deployment.props)
        if least < 2 or any(_budget_covers(b, namespace, labels) for b in budgets):
            continue
        who = k8s_name(deployment.resource_type, deployment.props, deployment.name)
        report(
            f"{who} runs at least {least} replicas in production stack "
            f"{stack_of(deployment.urn)} but no PodDisruptionBudget selects its pods: a node "
            "drain may evict every replica at once and the model is gone for a cold start. "
            "Fix: declare a policy/v1 PodDisruptionBudget (maxUnavailable: 1) selecting the "
            "llm pod labels (components/workload_pod.py disruption_budget does, from "
            "llm.autoscaling.minReplicas or llm.pod.replicas).",
            deployment.urn,
        )


POLICIES = [
    production_chat_replicas,
    production_llm_disruption_budget,
    production_chat_sign_in,
    production_multi_zone,
    production_deletion_protection,
]
