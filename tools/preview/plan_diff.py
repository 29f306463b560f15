"""Compare two offline renderings of a stack: what `pulumi up` would create, update, replace and
delete, and which of those changes are dangerous.

Resources are matched by URN (or by an alias the new resource declares). A changed resource is
*replaced* when one of its changed properties is one the provider cannot update in place: the
table `REPLACE_ON_CHANGE` below, taken from the providers' own rules (the Alibaba Cloud
Terraform provider's `ForceNew` arguments, which pulumi-alicloud bridges unchanged, and the
fields Kubernetes refuses to update). A property listed in a resource's `replaceOnChanges`
option, or any change when the option holds `*`, replaces too. What offline rendering cannot
see (a provider deciding at run time, outputs that change because a dependency is replaced),
`tools.preview.automation` gets from the real engine where credentials exist.

Danger rules (one function each, `assess`):
- any replacement or deletion of a stateful resource (`STATEFUL_TYPES`) is dangerous everywhere;
- for a model change, any change outside the llm workload (`in_llm_workload`) is out of scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tools.offline.engine import RenderedResource, Rendering
from tools.offline.wire import SECRET_MASK, Secret, mask_secrets

Op = Literal["create", "update", "replace", "delete"]
OPS: tuple[Op, ...] = ("create", "update", "replace", "delete")
OP_SYMBOL = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}

# --- provider rules --------------------------------------------------------------------------

# Properties (engine camelCase paths) whose change forces the provider to replace the resource.
# A path matches itself and everything below it; "*" means every input.
# Alibaba Cloud rows: the `ForceNew` arguments of the Terraform provider resources that
# pulumi-alicloud 4.x wraps (resource_alicloud_<service>_<resource>.go / the registry docs).
REPLACE_ON_CHANGE: dict[str, tuple[str, ...]] = {
    "alicloud:gpdb/instance:Instance": (
        "engine",
        "engineVersion",
        "vswitchId",
        "dbInstanceMode",
        "dbInstanceCategory",
        "instanceNetworkType",
        "vpcId",
        "zoneId",
        "availabilityZone",
        "paymentType",
        "instanceChargeType",
        "encryptionType",
        "encryptionKey",
    ),
    "alicloud:gpdb/account:Account": ("dbInstanceId", "accountName", "accountType"),
    "alicloud:gpdb/database:Database": (
        "dbInstanceId",
        "databaseName",
        "characterSetName",
        "collate",
        "ctype",
        "owner",
    ),
    "alicloud:cs/managedKubernetes:ManagedKubernetes": (
        "podCidr",
        "serviceCidr",
        "nodeCidrMask",
        "proxyMode",
        "ipStack",
        "zoneIds",
        "isEnterpriseSecurityGroup",
        "securityGroupId",
        "encryptionProviderKey",
        "clusterDomain",
        "userCa",
        "loadBalancerSpec",
    ),
    "alicloud:cs/nodePool:NodePool": ("clusterId", "securityGroupId", "securityGroupIds"),
    "alicloud:vpc/switch:Switch": ("vpcId", "cidrBlock", "zoneId", "availabilityZone"),
    "alicloud:vpc/natGateway:NatGateway": (
        "vpcId",
        "vswitchId",
        "natType",
        "networkType",
        "paymentType",
        "internetChargeType",
    ),
    "alicloud:ecs/securityGroup:SecurityGroup": ("vpcId", "securityGroupType", "resourceGroupId"),
    "alicloud:ecs/eipAddress:EipAddress": ("isp", "paymentType", "netmode", "addressName"),
    "alicloud:nas/fileSystem:FileSystem": (
        "protocolType",
        "storageType",
        "fileSystemType",
        "zoneId",
        "encryptType",
        "kmsKeyId",
        "vpcId",
        "vswitchId",
        "snapshotId",
    ),
    "alicloud:nas/mountTarget:MountTarget": (
        "fileSystemId",
        "vpcId",
        "vswitchId",
        "networkType",
        "securityGroupId",
    ),
    "alicloud:oss/bucket:Bucket": ("bucket", "storageClass", "redundancyType"),
    "alicloud:ram/accessKey:AccessKey": ("userName", "pgpKey", "secretFile"),
    "alicloud:cr/namespace:Namespace": ("name",),
    "alicloud:cr/repo:Repo": ("namespace", "name"),
    # A Kubernetes provider pointed at another cluster replaces everything it manages.
    "pulumi:providers:kubernetes": ("kubeconfig", "context", "cluster"),
    # The random provider regenerates on any change of its inputs (keepers included).
    "random:index/randomPassword:RandomPassword": ("*",),
    "random:index/randomId:RandomId": ("*",),
    # Kubernetes: fields the API server refuses to update (immutable), which the Kubernetes
    # provider therefore replaces.
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": (
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
        "spec.podManagementPolicy",
    ),
    "kubernetes:apps/v1:DaemonSet": ("spec.selector",),
    "kubernetes:batch/v1:Job": (
        "spec.template",
        "spec.selector",
        "spec.completions",
        "spec.completionMode",
    ),
    "kubernetes:core/v1:Service": ("spec.clusterIP", "spec.clusterIPs", "spec.ipFamilies"),
    "kubernetes:core/v1:PersistentVolumeClaim": (
        "spec.accessModes",
        "spec.selector",
        "spec.storageClassName",
        "spec.volumeMode",
        "spec.volumeName",
        "spec.dataSource",
        "spec.resources.limits",
    ),
    "kubernetes:core/v1:PersistentVolume": (
        "spec.csi",
        "spec.nfs",
        "spec.storageClassName",
        "spec.volumeMode",
        "spec.local",
        "spec.hostPath",
    ),
    "kubernetes:core/v1:Secret": ("type",),
    "kubernetes:storage.k8s.io/v1:StorageClass": (
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "volumeBindingMode",
    ),
    "kubernetes:policy/v1:PodDisruptionBudget": (),
}
# Every Kubernetes object is identified by its name and namespace: changing either replaces it.
KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace", "kind", "apiVersion")

# Resources that hold data or take long to rebuild: replacing or deleting one is dangerous.
STATEFUL_TYPES: dict[str, str] = {
    "alicloud:gpdb/instance:Instance": "ADB for PostgreSQL instance (knowledge-base vectors)",
    "alicloud:gpdb/database:Database": "ADB database (knowledge-base vectors)",
    "alicloud:nas/fileSystem:FileSystem": "NAS file system (models / knowledge base)",
    "alicloud:oss/bucket:Bucket": "OSS bucket (models)",
    "alicloud:cs/managedKubernetes:ManagedKubernetes": "ACK cluster (every workload)",
    "alicloud:cs/nodePool:NodePool": "ACK node pool (running nodes)",
    "kubernetes:core/v1:PersistentVolumeClaim": "PersistentVolumeClaim (bound volume data)",
    "kubernetes:core/v1:PersistentVolume": "PersistentVolume (bound volume data)",
}

# --- the llm workload (scope of `tools.model_change`) ----------------------------------------

LLM_COMPONENT_TYPE = re.compile(r"^chatchat:[A-Za-z_]+:Llm(Workload|Monitoring)$")
LLM_NAME = re.compile(r"^llm-")
CONVERSION_JOB = re.compile(r"(^|-)convert")
# Properties outside the llm workload that name the model on purpose (the chat pod tells the
# llm which model to ask for; policy annotations): a change limited to these stays in scope.
MODEL_COUPLED_PATHS = re.compile(
    r"(\.env\[name=LLM_MODEL\]\.value"
    r"|\.annotations\.chatchat\.io/(model|model-kind|gpu-memory-required-gib|load8bit))$"
)


# --- bulk imports (`chat.imports`): Jobs, not workloads --------------------------------------

IMPORT_COMPONENT_TYPE = re.compile(r"^chatchat:[A-Za-z_]+:ChatImports$")


def _type_chain(urn: str) -> list[str]:
    """`urn:pulumi:<stack>::<project>::<parent types $-joined>$<type>::<name>` → types."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def in_llm_workload(urn: str) -> bool:
    """The one definition of "the llm workload": what a model change is allowed to touch.

    Read from the URN alone (it carries the parent types and the logical name), so that offline
    renderings and the engine's preview events are judged alike. A resource belongs to it when an
    LlmWorkload component (`chatchat:<module>:LlmWorkload`) is the resource or among its
    ancestors (or LlmMonitoring: the llm's scrape config and alert rules follow its server),
    when its logical name starts with `llm-` (children of the component named `llm`),
    or when it is a Kubernetes Job whose name says it converts a model (`...-convert...`): the
    DeepGPU-LLM conversion Job a model change may add.
    """
    types, name = _type_chain(urn), urn.rsplit("::", 1)[-1]
    if any(LLM_COMPONENT_TYPE.match(t) for t in types) or LLM_NAME.match(name):
        return True
    return (
        bool(types) and types[-1] == "kubernetes:batch/v1:Job" and bool(CONVERSION_JOB.search(name))
    )


def in_import(urn: str) -> bool:
    """A bulk import's resource (its Job, source volume, RAM role): a ChatImports component
    (`chatchat:<module>:ChatImports`) is the resource or among its ancestors. A change there
    runs or re-runs an import; it never touches the serving workloads."""
    return any(IMPORT_COMPONENT_TYPE.match(t) for t in _type_chain(urn))


# --- the diff ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any  # secrets already masked; `None` for an added property
    new: Any
    replaces: bool = False


@dataclass
class ResourceChange:
    op: Op
    urn: str
    type: str
    name: str
    properties: list[PropertyChange] = field(default_factory=list)
    stateful: bool = False
    protected: bool = False
    llm_workload: bool = False
    bulk_import: bool = False  # a `chat.imports` Job or its source (see `in_import`)
    dangers: list[str] = field(default_factory=list)

    @property
    def scope(self) -> str:
        """What the change belongs to, as the reports label it (empty: the rest)."""
        return "llm workload" if self.llm_workload else "import" if self.bulk_import else ""


IMPORT_JOB = "kubernetes:batch/v1:Job"


def import_runs(diff: PlanDiff) -> list[str]:
    """What the change does to the bulk imports, one line per import Job created, replaced or
    deleted (a replaced Job runs the import again; stored files are skipped)."""
    verbs = {
        "create": "runs",
        "replace": "runs again",
        "delete": "is deleted (nothing stored is removed)",
        "update": "is updated in place (its pods keep running)",
    }
    return [
        f"import Job {c.name} {verbs[c.op]}"
        for c in diff.changes
        if c.bulk_import and c.type == IMPORT_JOB
    ]


@dataclass
class PlanDiff:
    before: str
    after: str
    changes: list[ResourceChange]
    unchanged: int
    outputs: list[PropertyChange] = field(default_factory=list)  # stack outputs that change

    def by_op(self, op: Op) -> list[ResourceChange]:
        return [c for c in self.changes if c.op == op]

    def counts(self) -> dict[str, int]:
        return {op: len(self.by_op(op)) for op in OPS} | {"same": self.unchanged}

    @property
    def dangers(self) -> list[tuple[ResourceChange, str]]:
        return [(c, d) for c in self.changes for d in c.dangers]

    @property
    def dangerous(self) -> bool:
        return any(c.dangers for c in self.changes)


def format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int) or part.startswith("name="):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_MISSING = object()


def _keyed(items: list) -> dict[str, Any] | None:
    """Items by their `name` when every item is a map with a distinct name (containers, env,
    volumes, ports: the lists Kubernetes itself merges by name)."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    keyed = {i["name"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def property_changes(old: Any, new: Any, path: tuple = ()) -> list[tuple[str, Any, Any]]:
    """Leaf-level differences between two input trees as (path, old, new), secrets masked.

    Maps are walked key by key. Lists of named maps (containers, env, volumes) are matched by
    name, shown as `env[name=PG_HOST]`, so adding one env entry is one change, not a shifted list;
    other lists item by item, with items past the shorter end added or removed. A secret is
    compared by value and always shown masked.
    """
    if isinstance(old, Secret) or isinstance(new, Secret):
        old_v = old.value if isinstance(old, Secret) else old
        new_v = new.value if isinstance(new, Secret) else new
        if old_v == new_v:
            return []
        return [
            (
                format_path(path),
                None if old is _MISSING else SECRET_MASK,
                None if new is _MISSING else SECRET_MASK,
            )
        ]
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in list(old) + [k for k in new if k not in old]:
            changes += property_changes(
                old.get(key, _MISSING), new.get(key, _MISSING), (*path, key)
            )
        return changes
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _keyed(old), _keyed(new)
        changes = []
        if old_keyed is not None and new_keyed is not None:
            for name in list(old_keyed) + [n for n in new_keyed if n not in old_keyed]:
                changes += property_changes(
                    old_keyed.get(name, _MISSING),
                    new_keyed.get(name, _MISSING),
                    (*path, f"name={name}"),
                )
            return changes
        for i in range(max(len(old), len(new))):
            changes += property_changes(
                old[i] if i < len(old) else _MISSING,
                new[i] if i < len(new) else _MISSING,
                (*path, i),
            )
        return changes
    if old == new:
        return []
    return [
        (
            format_path(path),
            None if old is _MISSING else mask_secrets(old),
            None if new is _MISSING else mask_secrets(new),
        )
    ]


def _path_matches(rule: str, path: str) -> bool:
    if rule == "*":
        return True
    return path == rule or path.startswith(rule + ".") or path.startswith(rule + "[")


def replace_rules(resource: RenderedResource) -> tuple[str, ...]:
    """The properties whose change replaces this resource: provider rules plus the resource's own
    `replaceOnChanges` option."""
    rules = REPLACE_ON_CHANGE.get(resource.type, ())
    if resource.type.startswith("kubernetes:"):
        rules = (*KUBERNETES_IDENTITY, *rules)
    own = tuple(_camel_path(p) for p in resource.options.get("replaceOnChanges", []))
    return (*rules, *own)


def _camel_path(path: str) -> str:
    # replaceOnChanges holds SDK (snake_case) or engine (camelCase) names; compare as camelCase
    return ".".join(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p) for p in path.split("."))


def _aliases(resource: RenderedResource) -> set[str]:
    """URNs the resource was known by: alias URNs, or alias specs resolved the way the engine
    does (a missing name, type, parent, stack or project means the resource's own)."""
    head, _, rest = resource.urn.partition("::")  # urn:pulumi:<stack>
    project, _, rest = rest.partition("::")
    chain = _type_chain(resource.urn)
    found = set()
    for alias in resource.options.get("aliasURNs", []) + resource.options.get("aliases", []):
        if isinstance(alias, str):
            found.add(alias)
            continue
        spec = alias.get("spec", alias) if isinstance(alias, dict) else {}
        if isinstance(spec.get("urn"), str):
            found.add(spec["urn"])
            continue
        if spec.get("parentUrn"):
            parents = _type_chain(spec["parentUrn"])
        elif spec.get("noParent"):
            parents = []
        else:
            parents = chain[:-1]
        stack = spec.get("stack") or head.removeprefix("urn:pulumi:")
        types = "$".join([*parents, spec.get("type") or resource.type])
        found.add(
            f"urn:pulumi:{stack}::{spec.get('project') or project}::{types}::"
            f"{spec.get('name') or resource.name}"
        )
    return found


def diff_renderings(before: Rendering, after: Rendering) -> PlanDiff:
    """What changes between two renderings, resource by resource (dangers not yet assessed)."""
    old_by_urn = before.by_urn()
    matched: set[str] = set()
    changes: list[ResourceChange] = []
    unchanged = 0
    for new in after.resources:
        old_urn = (
            new.urn
            if new.urn in old_by_urn
            else next((a for a in _aliases(new) if a in old_by_urn), None)
        )
        if old_urn is None:
            changes.append(
                _change(
                    "create",
                    new,
                    [PropertyChange(p, None, v) for p, _, v in property_changes({}, new.inputs)],
                )
            )
            continue
        matched.add(old_urn)
        old = old_by_urn[old_urn]
        rules = replace_rules(new)
        props = [
            PropertyChange(p, o, n, any(_path_matches(r, p) for r in rules))
            for p, o, n in property_changes(old.inputs, new.inputs)
        ]
        if old.type != new.type:
            props.insert(0, PropertyChange("(type)", old.type, new.type, True))
        if not props:
            unchanged += 1
            continue
        changes.append(
            _change("replace" if any(p.replaces for p in props) else "update", new, props)
        )
    for old in before.resources:
        if old.urn not in matched:
            changes.append(
                _change(
                    "delete",
                    old,
                    [PropertyChange(p, o, None) for p, o, _ in property_changes(old.inputs, {})],
                )
            )
    unchanged -= _cascade(after, changes)
    outputs = [
        PropertyChange(p, o, n) for p, o, n in property_changes(before.outputs, after.outputs)
    ]
    return PlanDiff(before.stack, after.stack, changes, unchanged, outputs)


def _cascade(after: Rendering, changes: list[ResourceChange]) -> int:
    """Follow replacements to the resources that consume them.

    Offline, a replaced resource keeps its mocked id and outputs, so its dependents look
    unchanged; the engine sees new values (unknown until the replacement exists). A dependent
    property that forces replacement (a node pool's `clusterId`, an ADB account's
    `dbInstanceId`) replaces the dependent too, and a replaced provider replaces every resource it
    manages (a Kubernetes provider pointed at a new cluster). Returns how many resources that
    looked unchanged now change.
    """
    by_urn = {c.urn: c for c in changes}
    replaced = {c.urn: c.name for c in changes if c.op == "replace"}
    newly_changed, grew = 0, True
    while grew:
        grew = False
        for resource in after.resources:
            change = by_urn.get(resource.urn)
            if change is not None and change.op in ("create", "replace"):
                continue
            seen = {p.path for p in change.properties} if change else set()
            rules = replace_rules(resource)
            props = []
            for key, deps in resource.property_dependencies.items():
                hit = next((replaced[d] for d in deps if d in replaced), None)
                if hit and key not in seen:
                    props.append(
                        PropertyChange(
                            key,
                            "(current)",
                            f"[unknown: {hit} is replaced]",
                            any(_path_matches(r, key) for r in rules),
                        )
                    )
            provider = str(resource.options.get("provider", "")).rsplit("::", 1)[0]
            if provider in replaced and "(provider)" not in seen:
                props.append(
                    PropertyChange(
                        "(provider)", "(current)", f"[replaced: {replaced[provider]}]", True
                    )
                )
            if not props:
                continue
            if change is None:
                change = _change("update", resource, [])
                changes.append(change)
                by_urn[resource.urn] = change
                newly_changed += 1
            change.properties += props
            if any(p.replaces for p in props):
                change.op = "replace"
                replaced[resource.urn] = resource.name
                grew = True
    return newly_changed


def _change(op: Op, resource: RenderedResource, props: list[PropertyChange]) -> ResourceChange:
    return ResourceChange(
        op=op,
        urn=resource.urn,
        type=resource.type,
        name=resource.name,
        properties=props,
        stateful=resource.type in STATEFUL_TYPES,
        protected=resource.protect,
        llm_workload=in_llm_workload(resource.urn),
        bulk_import=in_import(resource.urn),
    )


def _model_coupled(change: ResourceChange) -> bool:
    """An update outside the llm workload that only renames the model where the model is named on
    purpose (the chat pod's LLM_MODEL env entry, the model annotations)."""
    return (
        change.op == "update"
        and bool(change.properties)
        and all(MODEL_COUPLED_PATHS.search(p.path) for p in change.properties)
    )


def assess(diff: PlanDiff, model_scope: bool) -> PlanDiff:
    """Mark the dangers of each change in place; `model_scope` adds the out-of-scope rule."""
    for change in diff.changes:
        change.dangers = []
        if change.stateful and change.op in ("replace", "delete"):
            what = STATEFUL_TYPES[change.type]
            why = ", ".join(p.path for p in change.properties if p.replaces) or "removed"
            verb = "replaces" if change.op == "replace" else "deletes"
            change.dangers.append(f"{verb} stateful {what} ({why}); its data is lost")
        if change.protected and change.op in ("replace", "delete"):
            change.dangers.append("resource is protected: `pulumi up` will refuse this")
        if model_scope and not change.llm_workload and not _model_coupled(change):
            change.dangers.append("out of scope: a model change should only touch the llm workload")
    return diff


def compare(before: Rendering, after: Rendering, model_scope: bool = False) -> PlanDiff:
    return assess(diff_renderings(before, after), model_scope)
