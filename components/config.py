"""The whole stack configuration as one pydantic v2 model tree.

Keys are read from the Pulumi stack config of project `chatchat` (`chatchat:llm`, `chatchat:chat`,
...). The chart's values keep the chart's names and defaults (`llm.model`, `llm.load8bit`,
`llm.modelPVC`, `llm.pod.replicas`, `llm.pod.instanceType`, `chat.pod.replicas`,
`chat.pod.instanceType`, `chat.kbPVC`, `db.dbType`, `db.embeddingModel`).

Every config rule lives here: the structure (types, allowed values, unknown keys) in the models,
the rules across keys in one function per area (network, cluster, llm, chat, db, tags). One run
reports every problem, each naming its key path; nothing is declared before all pass, and the
components trust what they are given.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from components import cloud_facts
from components.catalog import GPU_FAMILIES, MODELS, GpuFamily, Model, gpu_family_of
from components.contract import GPU_RESOURCE, SYSTEM_POOL, Side

PROJECT = "chatchat"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
_DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_DIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_ADB_SPEC = re.compile(r"^(\d+)C(\d+)G$")
_ALLOWED_GPUS = ", ".join(
    f"{f.family} ({f.gpu_model.removeprefix('NVIDIA ')} {f.gpu_memory_gib} GB)"
    for f in GPU_FAMILIES.values()
    if f.supported
)


class ConfigError(Exception):
    """Invalid stack config: one (key path, message) per problem."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = "\n".join(f"  - {path}: {message}" for path, message in problems)
        super().__init__(f"invalid stack config ({len(problems)} problem(s)):\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


Quantity = Annotated[str, Field(pattern=_QUANTITY.pattern)]


# The chart's default resources; `<side>.pod.resources` overrides key by key.
DEFAULT_RESOURCES: dict[Side, dict[str, str]] = {
    "llm": {"cpu": "2", "memory": "6Gi", GPU_RESOURCE: "1"},
    "chat": {"cpu": "4", "memory": "8Gi"},
}
# Single-card ECI GPU specs (V100 16/32 GB, A10 24 GB); the llm gets those whose card fits.
ECI_GPU_SPECS = (
    "ecs.gn7i-c8g1.2xlarge",
    "ecs.gn7i-c16g1.4xlarge",
    "ecs.gn6v-c8g1.2xlarge",
    "ecs.gn6e-c12g1.3xlarge",
)


class Resources(_Model):
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Taint(_Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class Probe(_Model):
    initial_delay_seconds: int = Field(0, ge=0)
    period_seconds: int = Field(10, ge=1)
    timeout_seconds: int = Field(5, ge=1)
    failure_threshold: int = Field(3, ge=1)


class Image(_Model):
    """An image reference: repository (empty: the stack's own registry repository) and a pinned
    tag or digest. `latest` is refused: it makes rollouts and rollbacks unreproducible."""

    repository: str | None = None
    tag: str = "0.1.0"
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")

    @field_validator("tag")
    @classmethod
    def _no_latest(cls, tag: str) -> str:
        if tag == "latest" or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
            raise ValueError(
                f"{tag!r} is not a pinned tag; use a version such as 0.1.0 or a digest"
            )
        return tag


class ChatImage(Image):
    """The chat image; `variant` picks the CPU build or the CUDA build (tag `<tag>-cuda`, torch
    with CUDA, for GPU embedding). auto: cuda when `chat.pod.resources` has nvidia.com/gpu."""

    variant: Literal["auto", "cpu", "cuda"] = "auto"


class Service(_Model):
    type: Literal["ClusterIP", "LoadBalancer"] = "ClusterIP"
    # LoadBalancer services get an internal (VPC-only) SLB unless public is explicitly allowed.
    allow_public: bool = False


class Pod(_Model):
    replicas: int = Field(1, ge=0, le=64)
    instance_type: Literal["ecs", "eci"] = "ecs"
    resources: Resources | None = None
    tolerations: list[Toleration] = []
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    # ECI only: instance specs to try (`k8s.aliyun.com/eci-use-specs`) and extra ephemeral storage.
    eci_specs: list[str] = []
    eci_ephemeral_storage_gib: int = Field(50, ge=0, le=2048)


class LlmProbes(_Model):
    # The startup probe must outlast loading (or converting) a 13B model from network storage.
    startup: Probe = Probe(period_seconds=10, failure_threshold=180)
    readiness: Probe = Probe(period_seconds=10, failure_threshold=3)
    liveness: Probe = Probe(period_seconds=20, failure_threshold=6)


class ChatProbes(_Model):
    startup: Probe = Probe(period_seconds=5, failure_threshold=60)
    readiness: Probe = Probe(period_seconds=10, failure_threshold=3)
    liveness: Probe = Probe(period_seconds=20, failure_threshold=6)


class WakeSchedule(_Model):
    """A window (cron start and end, in `timezone`) in which a scaled-to-zero llm keeps
    `llm.autoscaling.wakeReplicas`: the queue metrics come from the llm pods, so at zero
    replicas nothing else can bring it back."""

    start: str = Field(pattern=r"^\S+( \S+){4}$")
    end: str = Field(pattern=r"^\S+( \S+){4}$")
    timezone: str = "Asia/Shanghai"


class Autoscaling(_Model):
    """Queue-driven llm replicas: a KEDA ScaledObject (addon ack-keda) whose Prometheus trigger
    reads requests waiting + running from the managed Prometheus. Off: `llm.pod.replicas`."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=0, le=64)
    max_replicas: int = Field(2, ge=1, le=64)
    # requests waiting + running one replica should carry (the trigger's threshold)
    target_requests_per_replica: int = Field(8, ge=1, le=4096)
    # how long the queue must stay empty before the llm goes to minReplicas 0 (KEDA cooldown)
    idle_minutes: int = Field(30, ge=1, le=1440)
    polling_seconds: int = Field(30, ge=5, le=600)
    wake_schedule: WakeSchedule | None = None
    wake_replicas: int = Field(1, ge=1, le=64)


class Llm(_Model):
    model: str = "qwen-7b-chat-aiacc"
    load8bit: bool = Field(True, alias="load8bit")
    model_pvc: str | None = Field(None, alias="modelPVC")
    pod: Pod = Pod()
    image: Image = Image()
    probes: LlmProbes = LlmProbes()
    service: Service = Service()
    autoscaling: Autoscaling = Autoscaling()

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
        return name

    @property
    def catalog_entry(self) -> Model:
        return MODELS[self.model]

    @property
    def effective_load8bit(self) -> bool:
        return self.catalog_entry.effective_load8bit(self.load8bit)


class KnowledgeBaseVolume(_Model):
    """The KB volume the stack makes when `chat.kbPVC` is not given."""

    storage: Literal["disk", "nas"] = "disk"
    size: Quantity = "50Gi"
    # Access mode of the KB volume; for an existing `chat.kbPVC`, what that PVC offers.
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] | None = None

    @property
    def effective_access_mode(self) -> str:
        if self.access_mode:
            return self.access_mode
        return "ReadWriteMany" if self.storage == "nas" else "ReadWriteOnce"


GlobalRole = Literal["admin", "creator"]


class ChatSignIn(_Model):
    """OpenID Connect sign-in for people (chat image README, "Sign-in and permissions"): the
    web UI signs users in (code flow + PKCE) and the API accepts the provider's JWT access
    tokens. Off while `issuer` is unset; production stacks require it (policy
    `production-chat-sign-in`). The client secret is the top-level secret `oidcClientSecret`
    (`pulumi config set --secret oidcClientSecret ...`); without it the web UI is a public
    client (PKCE only), which the provider must allow."""

    issuer: str | None = Field(None, pattern=r"^https://[^\s/]+(/\S*)?$")
    client_id: str | None = Field(None, min_length=1)
    # The `aud` of access tokens for the API; the client id when unset.
    audience: str | None = Field(None, min_length=1)
    groups_claim: str = Field("groups", min_length=1)
    roles_claim: str = Field("roles", min_length=1)
    # A group or role claim value to the global roles it grants.
    role_map: dict[str, list[GlobalRole]] = {}
    default_roles: list[GlobalRole] = ["creator"]
    # Where users reach the web UI (https://chat.example.com): the redirect URI is
    # <publicUrl>/auth/callback, and an https URL makes the session cookie Secure.
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")


# The chat image's knowledge-base name rule (app_images/chat/chat_server/stores/base.py
# validate_kb_name): display names in any script, NFC-normalised, at most this long.
KB_NAME_MAX = 100
_KB_NAME_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
# Default resources of one import pod; a GPU import adds one card (the embedding model uses one).
IMPORT_RESOURCES = {"cpu": "2", "memory": "4Gi"}


def _kb_name_error(name: str) -> str | None:
    if not name.strip():
        return "must not be empty or only whitespace"
    if len(name) > KB_NAME_MAX:
        return f"has {len(name)} characters, at most {KB_NAME_MAX} are allowed"
    bad = [c for c in name if unicodedata.category(c) in _KB_NAME_REFUSED_CATEGORIES]
    if bad:
        return f"must not contain control characters (found {bad[0]!r})"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "must not contain a path separator ('/' or '\\') nor be '.' or '..'"
    return None


def _relative_path_error(path: str) -> str | None:
    """A prefix or subdirectory below a mount: no `..`, no control characters."""
    if any(unicodedata.category(c) == "Cc" for c in path):
        return "must not contain control characters"
    if ".." in path.strip("/").split("/"):
        return "must not contain a '..' segment"
    return None


class OssImportSource(_Model):
    """An OSS bucket and prefix, mounted read-only by the OSS CSI driver through RRSA (like the
    model store: a RAM role only the driver's fuse pods may assume, reading this prefix only)."""

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, prefix: str) -> str:
        if error := _relative_path_error(prefix):
            raise ValueError(f"{prefix!r} {error}")
        return prefix.strip("/")


class NasImportSource(_Model):
    """A directory on a NAS file system of the VPC (NFSv3, mounted read-only)."""

    server: str = Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
    path: str = Field(pattern=r"^/")

    @field_validator("path")
    @classmethod
    def _safe_path(cls, path: str) -> str:
        if error := _relative_path_error(path):
            raise ValueError(f"{path!r} {error}")
        return path


class ImportSource(_Model):
    """Exactly one of `oss`, `nas` or `pvc` (an existing claim in the release namespace, with an
    optional `subPath` inside it)."""

    oss: OssImportSource | None = None
    nas: NasImportSource | None = None
    pvc: str | None = Field(None, pattern=_DNS_SUBDOMAIN_PATTERN)
    sub_path: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImportSource:
        given = [key for key in ("oss", "nas", "pvc") if getattr(self, key) is not None]
        if len(given) != 1:
            found = f"{' and '.join(given)} given" if given else "none given"
            raise ValueError(
                f"give exactly one of oss {{bucket, prefix}}, nas {{server, path}} or "
                f"pvc (+ subPath); {found}"
            )
        if self.sub_path is not None:
            if self.pvc is None:
                raise ValueError("subPath only applies to a pvc source")
            if self.sub_path.startswith("/") or _relative_path_error(self.sub_path):
                raise ValueError(f"subPath {self.sub_path!r} must be relative without '..'")
        return self

    @property
    def kind(self) -> Literal["oss", "nas", "pvc"]:
        return "oss" if self.oss else "nas" if self.nas else "pvc"


class BulkImport(_Model):
    """One bulk import: an Indexed Job whose pods each embed one shard of the source's files
    into `knowledgeBase` (README, "Fill a knowledge base from OSS")."""

    knowledge_base: str
    source: ImportSource
    # pods at once; shards: Job completions (each pod one deterministic part of the file list)
    parallelism: int = Field(1, ge=1, le=64)
    shards: int | None = Field(None, ge=1, le=1000)
    gpu: bool = False
    resources: Resources | None = None
    # pod failures tolerated per shard (crash, eviction) before the shard counts as failed
    retries_per_shard: int = Field(2, ge=0, le=10)
    # failed shards after which the Job stops the rest; unset: every shard runs
    max_failed_shards: int | None = Field(None, ge=0, le=1000)
    # raise to run the import again with the same settings (files already stored are skipped)
    rerun: int = Field(0, ge=0)

    @field_validator("knowledge_base")
    @classmethod
    def _kb_name(cls, name: str) -> str:
        name = unicodedata.normalize("NFC", name)
        if error := _kb_name_error(name):
            raise ValueError(f"knowledge base name {name!r} {error}")
        return name

    @property
    def completions(self) -> int:
        return self.shards if self.shards is not None else self.parallelism

    @property
    def import_id(self) -> str:
        """Deterministic: the same knowledge base and source are the same import (a re-run
        resumes it); `rerun` and sizing are not part of it."""
        identity = json.dumps(
            {"kb": self.knowledge_base, "source": self.source.model_dump(exclude_none=True)},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    @property
    def job_name(self) -> str:
        """A DNS label for any knowledge-base name: the ASCII letters and digits of the name
        (Chinese names have none) and the import id."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.knowledge_base.lower()).strip("-")[:30].strip("-")
        return f"import-{slug}-{self.import_id[:10]}" if slug else f"import-{self.import_id[:10]}"

    def pod_resources(self) -> dict[str, dict[str, str]]:
        """Defaults as requests and limits, overridden key by key; a GPU import takes one card."""
        override = self.resources or Resources()
        requests = {**IMPORT_RESOURCES, **override.requests}
        if self.gpu:
            requests[GPU_RESOURCE] = "1"
        return {"requests": requests, "limits": {**requests, **override.limits}}


class Chat(_Model):
    pod: Pod = Pod()
    kb_pvc: str | None = Field(None, alias="kbPVC")
    kb: KnowledgeBaseVolume = KnowledgeBaseVolume()
    image: ChatImage = ChatImage()
    probes: ChatProbes = ChatProbes()
    service: Service = Service()
    # Who may reach the web UI and API (NetworkPolicy ingress, SLB ACL); unset: the VPC only.
    allowed_cidrs: list[str] | None = None
    sign_in: ChatSignIn = ChatSignIn()
    # Bulk imports into knowledge bases, each an Indexed Job (components/chat_imports.py).
    imports: list[BulkImport] = []


class Adb(_Model):
    engine_version: Literal["6.0", "7.0"] = "6.0"
    # Per segment; the values the API accepts depend on the category (cloud facts: adb).
    instance_spec: str = "4C16G"
    # Storage-elastic segments come in steps: 4 (HighAvailability, production) or 2 (Basic).
    seg_node_num: int = Field(4, ge=2, le=512)
    # The provider creates only cloud_essd segments since 1.233.1 (storage-elastic mode).
    seg_storage_type: Literal["cloud_essd"] = "cloud_essd"
    storage_size: int = Field(50, ge=50, le=4000)  # GB per segment
    database_name: str = Field("chatchat", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    account_name: str = Field("chatchat", pattern=r"^[a-z][a-z0-9_]{1,15}$")

    @field_validator("engine_version", mode="before")
    @classmethod
    def _version_text(cls, version: Any) -> Any:
        # `engineVersion: 7.0` in YAML (or `--set db.adb.engineVersion=7.0`) is a number.
        return f"{version:.1f}" if isinstance(version, int | float) else version


class Db(_Model):
    db_type: Literal["faiss", "adb"] = "faiss"
    embedding_model: str = "text2vec-bge-large-chinese"
    adb: Adb = Adb()

    @field_validator("embedding_model")
    @classmethod
    def _directory_name(cls, name: str) -> str:
        if not _DIR_NAME.match(name):
            raise ValueError(f"{name!r} must be a directory name under /llm-model")
        return name


class GpuPool(_Model):
    name: str = Field(pattern=_DNS_LABEL.pattern)
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(0, ge=0, le=100)
    max_size: int = Field(1, ge=0, le=100)
    spot: bool = False
    # Highest hourly price (CNY) to bid per spot instance; unset: up to the pay-as-you-go price.
    spot_price_limit: float | None = Field(None, gt=0)
    labels: dict[str, str] = {}
    taints: list[Taint] = []
    driver_version: str | None = Field(None, pattern=r"^\d+\.\d+(\.\d+)*$")
    system_disk_gib: int = Field(200, ge=40, le=2048)

    @property
    def gpu_family(self) -> GpuFamily:
        """The pool's one GPU family (the cluster rules refuse pools without exactly one)."""
        family = gpu_family_of(self.instance_types[0])
        assert family is not None, f"pool {self.name} was not validated"
        return family


class SystemPool(_Model):
    instance_types: list[str] = ["ecs.g7.xlarge", "ecs.g6.xlarge"]
    size: int = Field(2, ge=1, le=50)
    system_disk_gib: int = Field(120, ge=40, le=2048)


class Cluster(_Model):
    # A creatable version (cloud facts: ack.creatableMinorVersions); checked across keys.
    version: str = Field(
        cloud_facts.value("ack", "defaultVersion"), pattern=r"^1\.\d+\.\d+-aliyun\.\d+$"
    )
    cluster_spec: Literal["ack.pro.small"] = "ack.pro.small"
    # Who may reach the API server's endpoint (the deployer's or CI runner's egress CIDRs). Empty:
    # the API server has no public endpoint and `pulumi up` must run inside the VPC.
    api_server_allowed_cidrs: list[str] = []
    system_pool: SystemPool = SystemPool()
    gpu_pools: list[GpuPool] = []


class Network(_Model):
    vpc_cidr: str = "192.168.0.0/16"
    vswitch_cidrs: list[str] = ["192.168.0.0/20"]
    # Terway pod vSwitches, one per zone, apart from the node vSwitches (empty: share them).
    pod_vswitch_cidrs: list[str] = []
    pod_cidr: str = "172.20.0.0/16"
    service_cidr: str = "172.21.0.0/20"


class FluidCache(_Model):
    """A JindoRuntime cache (ACK's ack-fluid) in front of the OSS model store; see README,
    "Faster model loads with Fluid". JindoRuntime reads OSS with an AccessKey only (no RRSA,
    cloud facts storage.fluidOssCredentials): `credentialsSecret` names an existing Secret in
    the release namespace with keys fs.oss.accessKeyId and fs.oss.accessKeySecret."""

    # MEM: emptyDir in memory (/dev/shm), fastest, counts against the worker node's memory;
    # SSD: a hostPath directory on the worker node's system disk (ESSD).
    medium: Literal["MEM", "SSD"] = "SSD"
    # Cache per worker; all workers together must hold the model's files.
    quota: Quantity = "40Gi"
    workers: int = Field(1, ge=1, le=16)
    # The node pool the workers run on (one per node): the system pool or a GPU pool's name.
    worker_pool: str = SYSTEM_POOL
    # A DataLoad fills the cache with the model directory before the llm starts.
    warm_up: bool = True
    credentials_secret: str | None = Field(None, pattern=_DNS_SUBDOMAIN_PATTERN, max_length=253)


class ModelAcceleration(_Model):
    type: Literal["none", "fluid"] = "none"
    fluid: FluidCache = FluidCache()


class ModelStore(_Model):
    type: Literal["oss", "nas"] = "oss"
    # OSS: bucket name prefix (a suffix makes it globally unique); directory holding the models.
    bucket_prefix: str = Field("chatchat-models", pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    # OSS: the whole bucket name instead of `<bucketPrefix>-<stack>-<random>` (a naming rule of
    # the account, or a stack name that is not a valid bucket name part); preflight asks OSS
    # whether it is free.
    bucket_name: str | None = None
    prefix: str = Field("llm-model", pattern=r"^[A-Za-z0-9._/-]*$")
    # NAS: file system type.
    nas_storage_type: Literal["Performance", "Capacity"] = "Performance"
    size: Quantity = "200Gi"
    # OSS: a Fluid (JindoRuntime) cache the llm reads the model through.
    acceleration: ModelAcceleration = ModelAcceleration()

    @property
    def fluid(self) -> FluidCache | None:
        """The Fluid cache settings when acceleration is on, else None."""
        return self.acceleration.fluid if self.acceleration.type == "fluid" else None


class Tags(_Model):
    project: str = PROJECT
    owner: str = Field(min_length=1)
    extra: dict[str, str] = {}


class Registry(_Model):
    """Where the images live. `personal`: ACR Personal Edition repositories made by the stack,
    pulled with a docker-registry Secret the stack makes from `registry.pullUsername` and the
    secret `registry.pullPassword` (the password set in the ACR console; the credential helper
    does not serve Personal Edition instances made after 2024-09-08). `enterprise`: an existing
    ACR Enterprise Edition instance (`registry.instanceId`, `registry.endpoint`), pulled through
    the aliyun-acr-credential-helper addon."""

    edition: Literal["personal", "enterprise"] = "personal"
    namespace: str = Field("chatchat", pattern=r"^[a-z0-9][a-z0-9_-]{1,29}$")
    pull_username: str | None = None
    pull_password: str | None = None
    instance_id: str | None = Field(None, pattern=r"^cri-[a-z0-9]+$")
    endpoint: str | None = None  # e.g. myreg-registry-vpc.cn-hangzhou.cr.aliyuncs.com


class Monitoring(_Model):
    """Scraping (ServiceMonitor), alert rules (PrometheusRule) and the Grafana dashboard for the
    managed Prometheus of the cluster (addon ack-arms-prometheus)."""

    enabled: bool = True
    # The instance's internal HTTP API URL (ARMS console, Prometheus instance, Settings): the
    # KEDA trigger queries it. Required with llm.autoscaling.enabled.
    prometheus_url: str | None = Field(None, pattern=r"^https?://\S+$")
    # where the managed Prometheus agent runs (the NetworkPolicy lets it reach /metrics)
    scraper_namespace: str = Field("arms-prom", pattern=_DNS_LABEL.pattern)
    # How the KEDA trigger authenticates to the instance's HTTP API: `none` (a V1 instance
    # without a token) or `basic` (V2 instances require it: `username` is the AccessKey ID of a
    # RAM user with AliyunPrometheusMetricReadAccess, the password its AccessKey secret as the
    # top-level Pulumi secret `prometheusPassword`). Becomes a Secret + TriggerAuthentication.
    auth: Literal["none", "basic"] = "none"
    username: str | None = Field(None, min_length=1, pattern=r"^\S+$")
    scrape_interval_seconds: int = Field(30, ge=5, le=300)
    ttft_p95_target_seconds: float = Field(5.0, gt=0, le=600)
    error_ratio_max: float = Field(0.05, gt=0, lt=1)
    queue_growing_minutes: int = Field(10, ge=1, le=240)


class StackConfig(_Model):
    stack: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    release: str = Field("chatchat", pattern=_DNS_LABEL.pattern)
    production: bool = False
    region: str = "cn-hangzhou"
    zones: list[str] = Field(["cn-hangzhou-k"], min_length=1)
    tags: Tags
    network: Network = Network()
    cluster: Cluster = Cluster()
    model_store: ModelStore = ModelStore()
    registry: Registry = Registry()
    llm: Llm = Llm()
    chat: Chat = Chat()
    # The OIDC client secret of chat.signIn (a Pulumi secret; see ChatSignIn).
    oidc_client_secret: str | None = Field(None, min_length=1)
    # The managed Prometheus password of monitoring.auth basic (a Pulumi secret; see Monitoring).
    prometheus_password: str | None = Field(None, min_length=1)
    db: Db = Db()
    monitoring: Monitoring = Monitoring()

    def chat_allowed_cidrs(self) -> list[str]:
        """Who may reach the chat ports: `chat.allowedCidrs`, narrow by default (the VPC)."""
        if self.chat.allowed_cidrs is None:
            return [self.network.vpc_cidr]
        return list(self.chat.allowed_cidrs)

    def resource_tags(self) -> dict[str, str]:
        """Tags for every taggable Alibaba Cloud resource."""
        return {
            **self.tags.extra,
            "project": self.tags.project,
            "stack": self.stack,
            "owner": self.tags.owner,
        }

    def gpu_pools_fitting_llm(self) -> list[GpuPool]:
        """GPU pools with at least one instance type whose card holds the llm model."""
        model, load8bit = self.llm.catalog_entry, self.llm.load8bit
        return [
            pool
            for pool in self.cluster.gpu_pools
            if any((f := gpu_family_of(t)) and model.fits(f, load8bit) for t in pool.instance_types)
        ]

    def side_pod(self, side: Side) -> Pod:
        return self.llm.pod if side == "llm" else self.chat.pod

    def pod_resources(self, side: Side) -> dict[str, dict[str, str]]:
        """Chart defaults as requests and limits; a request given without a limit sets both, and
        a GPU limit without a request sets both (extended resources: requests equal limits)."""
        override = self.side_pod(side).resources or Resources()
        requests = {**DEFAULT_RESOURCES[side], **override.requests}
        if GPU_RESOURCE in override.limits and GPU_RESOURCE not in requests:
            requests[GPU_RESOURCE] = override.limits[GPU_RESOURCE]
        return {"requests": requests, "limits": {**requests, **override.limits}}

    @property
    def llm_gpus_per_pod(self) -> int:
        """GPUs one llm pod takes (nvidia.com/gpu of llm.pod.resources, default 1)."""
        count = self.pod_resources("llm")["limits"].get(GPU_RESOURCE, "1")
        return int(count) if count.isdigit() else 1

    @property
    def chat_gpu(self) -> bool:
        """The chat pod takes a GPU (embedding on it): nvidia.com/gpu in chat.pod.resources."""
        return GPU_RESOURCE in self.pod_resources("chat")["limits"]

    @property
    def chat_image_variant(self) -> Literal["cpu", "cuda"]:
        variant = self.chat.image.variant
        if variant == "auto":
            return "cuda" if self.chat_gpu else "cpu"
        return variant

    def image(self, side: Side) -> Image:
        """The image a workload runs. The llm has two builds: `Dockerfile.aiacc` (DeepGPU-LLM,
        for `*-aiacc` models), tag `<llm.image.tag>-aiacc`, and `Dockerfile` (vLLM /
        transformers, open-source models), the tag as given; chat's CUDA variant gets `-cuda`.
        A pinned digest is used as given: it must be the matching build's."""
        image = self.llm.image if side == "llm" else self.chat.image
        if side == "llm":
            suffix = "-aiacc" if self.llm.catalog_entry.is_aiacc else ""
        else:
            suffix = "-cuda" if self.chat_image_variant == "cuda" else ""
        tag = image.tag if not suffix or image.tag.endswith(suffix) else f"{image.tag}{suffix}"
        return Image(repository=image.repository, tag=tag, digest=image.digest)

    def import_image(self, gpu: bool) -> Image:
        """The image of an import's pods: chat's, or its CUDA build for a GPU import (the
        config rules refuse a GPU import next to a digest-pinned CPU chat image)."""
        image = self.image("chat")
        if not gpu or self.chat_image_variant == "cuda":
            return image
        return Image(repository=image.repository, tag=f"{image.tag}-cuda")

    def eci_specs(self, side: Side) -> list[str]:
        """`k8s.aliyun.com/eci-use-specs`: the configured specs, else ones that fit the workload
        (empty when none can be derived: the llm and chat rules report it)."""
        pod = self.side_pod(side)
        if pod.eci_specs:
            return list(pod.eci_specs)
        if side == "llm":
            model = self.llm.catalog_entry
            return [
                s
                for s in ECI_GPU_SPECS
                if (f := gpu_family_of(s)) and model.fits(f, self.llm.load8bit)
            ]
        requests = self.pod_resources(side)["requests"]
        cpu, memory = requests["cpu"], requests["memory"]
        return [f"{cpu}-{memory}"] if cpu.isdigit() and memory.endswith("Gi") else []

    @property
    def uses_eci(self) -> bool:
        return "eci" in (self.llm.pod.instance_type, self.chat.pod.instance_type)


Problems = list[tuple[str, str]]


def _network_rules(cfg: StackConfig) -> Problems:
    problems: Problems = []
    nets: dict[str, ipaddress.IPv4Network] = {}
    for key in ("vpc_cidr", "pod_cidr", "service_cidr"):
        try:
            nets[key] = ipaddress.IPv4Network(getattr(cfg.network, key))
        except ValueError as exc:
            problems.append((f"network.{to_camel(key)}", f"not an IPv4 CIDR: {exc}"))
    if len(cfg.network.vswitch_cidrs) != len(cfg.zones):
        problems.append(
            (
                "network.vswitchCidrs",
                f"{len(cfg.network.vswitch_cidrs)} CIDR(s) for "
                f"{len(cfg.zones)} zone(s); give one vSwitch CIDR per zone",
            )
        )
    if len(set(cfg.zones)) != len(cfg.zones):
        problems.append(("zones", "a zone is listed twice"))
    vswitches: list[ipaddress.IPv4Network] = []
    for i, cidr in enumerate(cfg.network.vswitch_cidrs):
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            problems.append((f"network.vswitchCidrs[{i}]", f"not an IPv4 CIDR: {exc}"))
            continue
        if "vpc_cidr" in nets and not net.subnet_of(nets["vpc_cidr"]):
            problems.append(
                (f"network.vswitchCidrs[{i}]", f"{cidr} is outside vpcCidr {cfg.network.vpc_cidr}")
            )
        if any(net.overlaps(other) for other in vswitches):
            problems.append((f"network.vswitchCidrs[{i}]", f"{cidr} overlaps another vSwitch"))
        vswitches.append(net)
    pod_vswitches = cfg.network.pod_vswitch_cidrs
    if pod_vswitches and len(pod_vswitches) != len(cfg.zones):
        problems.append(
            (
                "network.podVswitchCidrs",
                f"{len(pod_vswitches)} CIDR(s) for "
                f"{len(cfg.zones)} zone(s); give one Terway pod vSwitch CIDR per zone",
            )
        )
    for i, cidr in enumerate(pod_vswitches):
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            problems.append((f"network.podVswitchCidrs[{i}]", f"not an IPv4 CIDR: {exc}"))
            continue
        if "vpc_cidr" in nets and not net.subnet_of(nets["vpc_cidr"]):
            problems.append(
                (
                    f"network.podVswitchCidrs[{i}]",
                    f"{cidr} is outside vpcCidr {cfg.network.vpc_cidr}",
                )
            )
        if any(net.overlaps(other) for other in vswitches):
            problems.append((f"network.podVswitchCidrs[{i}]", f"{cidr} overlaps another vSwitch"))
        vswitches.append(net)
    for key in ("pod_cidr", "service_cidr"):
        if key in nets and "vpc_cidr" in nets and nets[key].overlaps(nets["vpc_cidr"]):
            problems.append((f"network.{to_camel(key)}", f"{nets[key]} overlaps vpcCidr"))
    if {"pod_cidr", "service_cidr"} <= nets.keys() and nets["pod_cidr"].overlaps(
        nets["service_cidr"]
    ):
        problems.append(("network.serviceCidr", "overlaps podCidr"))
    return problems


def _cluster_rules(cfg: StackConfig) -> Problems:
    problems: Problems = []
    seen: set[str] = set()
    for i, pool in enumerate(cfg.cluster.gpu_pools):
        path = f"cluster.gpuPools[{i}]"
        if pool.name in seen:
            problems.append((f"{path}.name", f"duplicate pool name {pool.name!r}"))
        if pool.name == SYSTEM_POOL:  # the CPU pool's node-pool label value
            problems.append(
                (f"{path}.name", f"{SYSTEM_POOL!r} is the system pool's name; pick another")
            )
        seen.add(pool.name)
        if pool.spot_price_limit is not None and not pool.spot:
            problems.append((f"{path}.spotPriceLimit", "only applies with spot: true"))
        if pool.min_size > pool.max_size:
            problems.append((f"{path}.minSize", f"{pool.min_size} exceeds maxSize {pool.max_size}"))
        families = [gpu_family_of(t) for t in pool.instance_types]
        for j, (itype, family) in enumerate(zip(pool.instance_types, families, strict=True)):
            if family is None or not family.supported:
                why = family.refusal if family else "not a GPU instance type"
                problems.append(
                    (
                        f"{path}.instanceTypes[{j}]",
                        f"{itype}: {why}; allowed families: {_ALLOWED_GPUS}",
                    )
                )
        names = {f.family for f in families if f}
        if len(names) > 1 and all(f and f.supported for f in families):
            problems.append(
                (
                    f"{path}.instanceTypes",
                    f"mixes GPU families {sorted(names)}; "
                    "one pool per family keeps its GPU-memory label true",
                )
            )
        problems += _label_map_problems(f"{path}.labels", pool.labels, check_values=True)
        for j, taint in enumerate(pool.taints):
            if error := _label_key_error(taint.key):
                problems.append((f"{path}.taints[{j}].key", error))
    return problems


def _llm_rules(cfg: StackConfig) -> Problems:
    problems: Problems = []
    llm, model = cfg.llm, cfg.llm.catalog_entry
    if llm.pod.instance_type == "eci" and model.is_aiacc:
        open_source = model.source_model or "an open-source model"
        problems.append(
            (
                "llm.pod.instanceType",
                f"eci cannot run DeepGPU-LLM model {llm.model}"
                f"; use instanceType ecs, or {open_source} on eci",
            )
        )
    needed = model.required_gpu_gib(llm.load8bit)
    precision = "int8" if llm.effective_load8bit else "fp16"
    if llm.pod.instance_type == "ecs" and llm.pod.replicas > 0:
        if not cfg.cluster.gpu_pools:
            problems.append(
                ("cluster.gpuPools", f"llm.model {llm.model} needs a GPU pool; none is configured")
            )
        elif not cfg.gpu_pools_fitting_llm():
            pools = ", ".join(
                f"{p.name} ({'/'.join(p.instance_types)})" for p in cfg.cluster.gpu_pools
            )
            problems.append(
                (
                    "llm.model",
                    f"{llm.model} ({precision}) needs {needed} GiB of "
                    f"GPU memory on one card; no GPU pool fits: {pools}",
                )
            )
        elif not any(p.max_size > 0 for p in cfg.gpu_pools_fitting_llm()):
            problems.append(("cluster.gpuPools", "every GPU pool that fits the llm has maxSize 0"))
    for j, spec in enumerate(llm.pod.eci_specs):
        family = gpu_family_of(spec)
        if family is None or not model.fits(family, llm.load8bit):
            problems.append(
                (
                    f"llm.pod.eciSpecs[{j}]",
                    f"{spec} cannot hold {llm.model} "
                    f"({needed} GiB, {precision}); use a gn6v/gn6e/gn7i spec that fits",
                )
            )
    if llm.pod.instance_type == "eci" and not cfg.eci_specs("llm"):
        problems.append(
            ("llm.pod.eciSpecs", f"no single-GPU ECI spec holds {model.name} ({needed} GiB)")
        )
    return problems + _pod_rules(cfg, "llm")


def _autoscaling_rules(cfg: StackConfig) -> Problems:
    """Queue-driven llm replicas: a range that fits the GPU pools, a Prometheus to ask, and a way
    back from zero."""
    scaling = cfg.llm.autoscaling
    problems: Problems = []
    if not scaling.enabled:
        return problems
    key = "llm.autoscaling"
    replicas = cfg.llm.pod.replicas
    if not scaling.min_replicas <= replicas <= scaling.max_replicas:
        problems.append(
            (
                "llm.pod.replicas",
                f"{replicas} is outside llm.autoscaling's {scaling.min_replicas}.."
                f"{scaling.max_replicas}: the autoscaler owns the count (the Deployment starts "
                "with llm.pod.replicas)",
            )
        )
    if scaling.min_replicas > scaling.max_replicas:
        problems.append(
            (
                f"{key}.minReplicas",
                f"{scaling.min_replicas} exceeds maxReplicas {scaling.max_replicas}",
            )
        )
    if not cfg.monitoring.enabled:
        problems.append(
            (f"{key}.enabled", "needs monitoring.enabled: the trigger reads the scraped queue")
        )
    elif cfg.monitoring.prometheus_url is None:
        problems.append(
            (
                "monitoring.prometheusUrl",
                "required with llm.autoscaling.enabled: the managed Prometheus instance's "
                "internal HTTP API URL (ARMS console, instance Settings)",
            )
        )
    if scaling.min_replicas == 0:
        if cfg.production:
            problems.append(
                (f"{key}.minReplicas", "0 in a production stack; keep at least one replica")
            )
        if scaling.wake_replicas > scaling.max_replicas:
            problems.append(
                (
                    f"{key}.wakeReplicas",
                    f"{scaling.wake_replicas} exceeds maxReplicas {scaling.max_replicas}",
                )
            )
    if scaling.wake_schedule is not None:
        try:
            zoneinfo.ZoneInfo(scaling.wake_schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(
                (
                    f"{key}.wakeSchedule.timezone",
                    f"{scaling.wake_schedule.timezone!r} is not an IANA time zone",
                )
            )
    if cfg.llm.pod.instance_type == "ecs" and cfg.gpu_pools_fitting_llm():
        gpus = cfg.llm_gpus_per_pod
        nodes = sum(p.max_size for p in cfg.gpu_pools_fitting_llm())
        if scaling.max_replicas * gpus > nodes:
            problems.append(
                (
                    f"{key}.maxReplicas",
                    f"{scaling.max_replicas} replica(s) x {gpus} GPU(s) need "
                    f"{scaling.max_replicas * gpus} GPU node(s); the GPU pools that fit "
                    f"{cfg.llm.model} allow {nodes} (sum of maxSize)",
                )
            )
    return problems


_QUANTITY_GIB = {
    "": 1 / 1024**3,
    "k": 1e3 / 1024**3,
    "M": 1e6 / 1024**3,
    "G": 1e9 / 1024**3,
    "T": 1e12 / 1024**3,
    "Ki": 1 / 1024**2,
    "Mi": 1 / 1024,
    "Gi": 1.0,
    "Ti": 1024.0,
    "m": 1e-3 / 1024**3,
}
# What a worker node's system disk keeps apart from an SSD cache: the OS, the container images
# (the llm image is the largest) and logs. A planning figure, not a measured one.
SYSTEM_DISK_RESERVE_GIB = 60


def quantity_gib(quantity: str) -> float:
    """A Kubernetes quantity (`40Gi`, `50G`, `512Mi`) in GiB."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a quantity")
    number, unit = quantity[: len(quantity) - len(match.group(2) or "")], match.group(2) or ""
    return float(number) * _QUANTITY_GIB[unit]


def _acceleration_rules(cfg: StackConfig) -> Problems:
    """A Fluid cache sits in front of the stack's own OSS store, holds the model, and its
    workers fit the nodes of the pool they run on (one worker per node)."""
    store, fluid = cfg.model_store, cfg.model_store.fluid
    if fluid is None:
        return []
    key = "modelStore.acceleration"
    if store.type != "oss":
        return [(f"{key}.type", f"fluid caches an OSS store; modelStore.type is {store.type}")]
    if cfg.llm.model_pvc:
        return [
            (
                f"{key}.type",
                "fluid caches the stack's own OSS bucket; llm.modelPVC brings a volume of its "
                "own: unset one of them",
            )
        ]
    problems: Problems = []
    if cfg.llm.pod.instance_type == "eci":
        problems.append(
            (
                f"{key}.type",
                "fluid mounts through its CSI plugin on ECS nodes; llm.pod.instanceType eci "
                "would need Fluid's sidecar injection, which the stack does not set up",
            )
        )
    if fluid.credentials_secret is None:
        problems.append(
            (
                f"{key}.fluid.credentialsSecret",
                "required with acceleration fluid: JindoRuntime reads OSS with an AccessKey "
                "only (no RRSA), so name an existing Secret in the release namespace with keys "
                "fs.oss.accessKeyId and fs.oss.accessKeySecret (README, Faster model loads "
                "with Fluid)",
            )
        )
    model = cfg.llm.catalog_entry
    quota, needed = quantity_gib(fluid.quota), model.weights_fp16_gib
    if quota * fluid.workers < needed:
        problems.append(
            (
                f"{key}.fluid.quota",
                f"{fluid.quota} x {fluid.workers} worker(s) cannot hold {model.name} "
                f"({needed:g} GiB of files in {model.directory}); raise quota or workers",
            )
        )
    pools = {p.name: p for p in cfg.cluster.gpu_pools}
    if fluid.worker_pool == SYSTEM_POOL:
        nodes, disk = cfg.cluster.system_pool.size, cfg.cluster.system_pool.system_disk_gib
        what = f"the system pool has {nodes} node(s) (cluster.systemPool.size)"
    elif fluid.worker_pool in pools:
        pool = pools[fluid.worker_pool]
        # A worker must not hold a GPU node up that the autoscaler would otherwise release.
        nodes, disk = pool.min_size, pool.system_disk_gib
        what = f"GPU pool {pool.name} keeps {nodes} node(s) up (minSize)"
    else:
        allowed = ", ".join([SYSTEM_POOL, *pools])
        problems.append(
            (f"{key}.fluid.workerPool", f"unknown pool {fluid.worker_pool!r}; allowed: {allowed}")
        )
        return problems
    if fluid.workers > nodes:
        problems.append(
            (
                f"{key}.fluid.workers",
                f"{fluid.workers} worker(s) run one per node and {what}",
            )
        )
    if fluid.medium == "SSD" and quota > disk - SYSTEM_DISK_RESERVE_GIB:
        problems.append(
            (
                f"{key}.fluid.quota",
                f"{fluid.quota} of SSD cache does not fit a {disk} GiB system disk of pool "
                f"{fluid.worker_pool} beside the {SYSTEM_DISK_RESERVE_GIB} GiB the node keeps "
                "for its OS and images; raise the pool's systemDiskGib or add workers",
            )
        )
    return problems


def _chat_rules(cfg: StackConfig) -> Problems:
    problems: Problems = []
    chat = cfg.chat
    # GPU nodes are tainted for the llm; a CPU chat runs on the CPU system pool (or ECI) and must
    # not tolerate the taint. A chat pod that takes a GPU (embedding on it) gets the toleration.
    if not cfg.chat_gpu:
        for i, toleration in enumerate(chat.pod.tolerations):
            if toleration.key in (GPU_RESOURCE, None):
                problems.append(
                    (
                        f"chat.pod.tolerations[{i}]",
                        "must not tolerate the GPU taint "
                        f"{GPU_RESOURCE}: GPU nodes are kept for pods that take a GPU "
                        f"(give chat {GPU_RESOURCE} in chat.pod.resources.limits to embed on one)",
                    )
                )
    problems += _chat_gpu_rules(cfg)
    if chat.pod.instance_type == "eci" and not cfg.eci_specs("chat"):
        requests = cfg.pod_resources("chat")["requests"]
        problems.append(
            (
                "chat.pod.eciSpecs",
                f"cannot derive an ECI spec from cpu "
                f"{requests['cpu']} and memory {requests['memory']}; list specs such "
                "as 4-8Gi or ecs.c7.xlarge",
            )
        )
    kb_mode = chat.kb.effective_access_mode
    if chat.kb.storage == "disk" and chat.kb.access_mode == "ReadWriteMany" and not chat.kb_pvc:
        problems.append(("chat.kb.accessMode", "a cloud disk is ReadWriteOnce; use storage nas"))
    if chat.pod.replicas > 1 and kb_mode != "ReadWriteMany":
        problems.append(
            (
                "chat.pod.replicas",
                f"{chat.pod.replicas} replicas cannot share a "
                f"{kb_mode} knowledge-base volume; use 1 replica or chat.kb.storage nas "
                "(ReadWriteMany)",
            )
        )
    elif chat.pod.replicas > 1 and cfg.db.db_type == "faiss":
        # faiss index files allow one writer; two pods writing one index over NFS corrupt it.
        problems.append(
            (
                "chat.pod.replicas",
                f"{chat.pod.replicas} replicas cannot write one "
                "faiss index (single writer); use db.dbType adb, or 1 replica",
            )
        )
    for i, cidr in enumerate(chat.allowed_cidrs or []):
        try:
            ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            problems.append((f"chat.allowedCidrs[{i}]", f"not an IPv4 CIDR: {exc}"))
    return problems + _pod_rules(cfg, "chat")


def _chat_gpu_rules(cfg: StackConfig) -> Problems:
    """A GPU chat pod: one whole card, requests equal to limits, a GPU pool (or GPU ECI specs)
    to land on, and the CUDA image."""
    chat, resources = cfg.chat, cfg.chat.pod.resources or Resources()
    requested, limited = resources.requests.get(GPU_RESOURCE), resources.limits.get(GPU_RESOURCE)
    if requested is not None and limited is not None and requested != limited:
        return [
            (
                f"chat.pod.resources.requests.{GPU_RESOURCE}",
                f"{requested} differs from the limit {limited}; an extended resource's request "
                "must equal its limit (set the limit only)",
            )
        ]
    if not cfg.chat_gpu:
        return []  # the CUDA variant without a GPU is allowed: it embeds on the CPU (auto)
    problems: Problems = []
    count = cfg.pod_resources("chat")["limits"][GPU_RESOURCE]
    if count != "1":
        problems.append(
            (
                f"chat.pod.resources.limits.{GPU_RESOURCE}",
                f"{count!r}: the embedding model uses one card; set 1",
            )
        )
    if chat.image.variant == "cpu":
        problems.append(
            (
                "chat.image.variant",
                f"cpu cannot use the {GPU_RESOURCE} the chat pod takes; use cuda or auto",
            )
        )
    if chat.pod.replicas == 0:
        return problems
    if chat.pod.instance_type == "ecs":
        if not cfg.cluster.gpu_pools:
            problems.append(
                (
                    "cluster.gpuPools",
                    f"chat.pod.resources takes {GPU_RESOURCE} but no GPU pool is configured",
                )
            )
        elif not any(p.max_size > 0 for p in cfg.cluster.gpu_pools):
            problems.append(
                (
                    "cluster.gpuPools",
                    f"chat.pod.resources takes {GPU_RESOURCE} but every GPU pool has maxSize 0",
                )
            )
    else:
        specs = cfg.eci_specs("chat")
        cpu_specs = [s for s in specs if not ((f := gpu_family_of(s)) and f.supported)]
        if not specs or not chat.pod.eci_specs or cpu_specs:
            problems.append(
                (
                    "chat.pod.eciSpecs",
                    f"a chat pod with {GPU_RESOURCE} on eci needs GPU ECI specs"
                    + (f" ({', '.join(cpu_specs)}: no allowed GPU)" if cpu_specs else "")
                    + f"; list single-GPU specs such as {ECI_GPU_SPECS[0]}",
                )
            )
    return problems


def _imports_rules(cfg: StackConfig) -> Problems:
    """Each bulk import: a bucket OSS accepts, shards that give every pod work, GPU imports on
    GPU pools large enough for their parallelism and a CUDA image, no import declared twice."""
    from alibabacloud_oss_v2.validation import is_valid_bucket_name

    problems: Problems = []
    seen: dict[str, int] = {}
    gpu_nodes = sum(p.max_size for p in cfg.cluster.gpu_pools)
    for i, item in enumerate(cfg.chat.imports):
        key = f"chat.imports[{i}]"
        if item.import_id in seen:
            problems.append(
                (
                    key,
                    f"imports the same source into {item.knowledge_base!r} as "
                    f"chat.imports[{seen[item.import_id]}]; raise that one's rerun instead",
                )
            )
        seen.setdefault(item.import_id, i)
        oss = item.source.oss
        if oss is not None and not is_valid_bucket_name(oss.bucket):
            rule = cloud_facts.value("storage", "ossBucketNaming")["rule"]
            problems.append(
                (f"{key}.source.oss.bucket", f"{oss.bucket!r} is not an OSS bucket name ({rule})")
            )
        if item.completions < item.parallelism:
            problems.append(
                (
                    f"{key}.shards",
                    f"{item.completions} shard(s) for parallelism {item.parallelism}: pods "
                    "beyond the shard count would have nothing to do; give at least as many "
                    "shards",
                )
            )
        if item.max_failed_shards is not None and item.max_failed_shards >= item.completions:
            problems.append(
                (
                    f"{key}.maxFailedShards",
                    f"{item.max_failed_shards} is not below the {item.completions} shard(s); "
                    "leave it unset to run every shard",
                )
            )
        limits = (item.resources or Resources()).limits
        requests = (item.resources or Resources()).requests
        for section, values in (("requests", requests), ("limits", limits)):
            if GPU_RESOURCE in values:
                problems.append(
                    (
                        f"{key}.resources.{section}.{GPU_RESOURCE}",
                        "set by gpu: true (one card per pod, the embedding model uses one); "
                        "remove it",
                    )
                )
        if not item.gpu:
            continue
        if not cfg.cluster.gpu_pools or gpu_nodes == 0:
            problems.append(
                (
                    f"{key}.gpu",
                    "a GPU import needs a GPU pool with maxSize above 0; none is configured",
                )
            )
        elif item.parallelism > gpu_nodes:
            pools = ", ".join(f"{p.name} (maxSize {p.max_size})" for p in cfg.cluster.gpu_pools)
            problems.append(
                (
                    f"{key}.parallelism",
                    f"{item.parallelism} GPU pods cannot run at once: the GPU pools grow to "
                    f"{gpu_nodes} node(s) ({pools}), and the llm takes cards there too; lower "
                    "parallelism or raise a pool's maxSize",
                )
            )
        if cfg.chat_image_variant == "cpu" and cfg.chat.image.digest:
            problems.append(
                (
                    f"{key}.gpu",
                    "chat.image.digest pins the CPU build; a GPU import runs the CUDA build "
                    "(tag <chat.image.tag>-cuda): pin a tag, or run chat on the cuda variant",
                )
            )
    return problems


def _db_rules(cfg: StackConfig) -> Problems:
    problems: Problems = []
    adb = cfg.db.adb
    if cfg.db.db_type != "adb":
        return problems
    match = _ADB_SPEC.match(adb.instance_spec)
    if not match:
        problems.append(
            (
                "db.adb.instanceSpec",
                f"{adb.instance_spec!r} is not of the form <cores>C<memory>G, e.g. 4C16G",
            )
        )
    elif int(match.group(1)) < 4 or int(match.group(2)) < 16:
        problems.append(
            (
                "db.adb.instanceSpec",
                f"{adb.instance_spec} is below 4C16G, the minimum for vector engine optimisation",
            )
        )
    step, category = (4, "HighAvailability") if cfg.production else (2, "Basic")
    if adb.seg_node_num % step:
        problems.append(
            (
                "db.adb.segNodeNum",
                f"{adb.seg_node_num} must be a multiple of {step} "
                f"for a {category} (production: {cfg.production}) instance",
            )
        )
    return problems


def _tags_rules(cfg: StackConfig) -> Problems:
    return [
        (
            f"tags.extra.{key}",
            "Alibaba Cloud tag keys cannot start with aliyun or acs: and "
            "are at most 128 characters",
        )
        for key in cfg.resource_tags()
        if key.startswith(("aliyun", "acs:")) or len(key) > 128
    ]


def _pod_rules(cfg: StackConfig, side: Side) -> Problems:
    """Labels, annotations and nodeSelector of one workload's pods, and its Service."""
    pod, service = cfg.side_pod(side), getattr(cfg, side).service
    problems = _label_map_problems(f"{side}.pod.labels", pod.labels, check_values=True)
    problems += _label_map_problems(f"{side}.pod.annotations", pod.annotations, check_values=False)
    problems += _label_map_problems(
        f"{side}.pod.nodeSelector", pod.node_selector, check_values=True
    )
    if service.allow_public and service.type != "LoadBalancer":
        problems.append((f"{side}.service.allowPublic", "only applies to type LoadBalancer"))
    return problems


_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(_DNS_SUBDOMAIN_PATTERN)


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if not name or not _LABEL_NAME.match(name) or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
        return f"{key!r} is not a valid Kubernetes label key"
    return None


def _label_map_problems(path: str, mapping: Mapping[str, str], check_values: bool) -> Problems:
    problems: Problems = []
    for key, value in mapping.items():
        if error := _label_key_error(key):
            problems.append((f"{path}.{key}", error))
        elif check_values and (len(value) > 63 or not _LABEL_NAME.match(value)):
            problems.append((f"{path}.{key}", f"{value!r} is not a valid label value"))
    return problems


def adb_category(cfg: StackConfig) -> str:
    """Production stacks get a HighAvailability ADB instance, the others a Basic one."""
    return "HighAvailability" if cfg.production else "Basic"


def _check_cloud_facts(cfg: StackConfig) -> list[tuple[str, str]]:
    """Values the Alibaba Cloud API would refuse, judged on the cloud facts table."""
    problems: list[tuple[str, str]] = []
    creatable = cloud_facts.creatable_ack_minors()
    minor = cloud_facts.ack_minor(cfg.cluster.version)
    if minor not in creatable:
        problems.append(
            (
                "cluster.version",
                f"{cfg.cluster.version}: ACK creates clusters only on "
                f"{', '.join(creatable)} (cloud facts ack.creatableMinorVersions); use "
                f"e.g. {cloud_facts.value('ack', 'defaultVersion')}",
            )
        )
    drivers = cloud_facts.nvidia_driver_versions()
    for i, pool in enumerate(cfg.cluster.gpu_pools):
        if pool.driver_version and pool.driver_version not in drivers:
            problems.append(
                (
                    f"cluster.gpuPools[{i}].driverVersion",
                    f"{pool.driver_version} is "
                    f"not an NVIDIA driver ACK installs (ack.nvidiaDriverVersions: "
                    f"{', '.join(drivers)}); pick one or leave it unset for ACK's "
                    "default",
                )
            )
    if cfg.db.db_type == "adb":
        category = adb_category(cfg)
        specs = cloud_facts.adb_specs(category)
        match = _ADB_SPEC.match(cfg.db.adb.instance_spec)
        big_enough = match and int(match.group(1)) >= 4 and int(match.group(2)) >= 16
        if big_enough and cfg.db.adb.instance_spec not in specs:  # else reported above
            problems.append(
                (
                    "db.adb.instanceSpec",
                    f"{cfg.db.adb.instance_spec} is not a "
                    f"{category} storage-elastic spec (production: {cfg.production}); "
                    f"allowed: {', '.join(specs)}",
                )
            )
    return problems


def _check_names_and_regions(cfg: StackConfig) -> list[tuple[str, str]]:
    """Names the cluster would refuse and zones of another region: fail in plan, not in up."""
    problems: list[tuple[str, str]] = []
    for key, name in (("chat.kbPVC", cfg.chat.kb_pvc), ("llm.modelPVC", cfg.llm.model_pvc)):
        if name is not None and (len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
            problems.append(
                (
                    key,
                    f"{name!r} is not a Kubernetes object name (DNS-1123: lower "
                    "case letters, digits, '-' and '.', starting and ending with a "
                    "letter or digit)",
                )
            )
    for i, zone in enumerate(cfg.zones):
        if not re.fullmatch(rf"{re.escape(cfg.region)}-[a-z0-9]+", zone):
            problems.append(
                (
                    f"zones[{i}]",
                    f"{zone} is not a zone of region {cfg.region} "
                    f"(alicloud:region); zones look like {cfg.region}-k",
                )
            )
    return problems


BUCKET_SUFFIX_SAMPLE = "0" * 8  # the random suffix is 4 bytes, 8 hex digits


def generated_bucket_name(cfg: StackConfig, suffix: str = BUCKET_SUFFIX_SAMPLE) -> str:
    """The OSS bucket name the stack creates (`components/storage.py` uses it too)."""
    store = cfg.model_store
    return store.bucket_name or f"{store.bucket_prefix}-{cfg.stack}-{suffix}"


def _check_bucket_name(cfg: StackConfig) -> list[tuple[str, str]]:
    """An OSS bucket name that OSS would refuse fails in plan (cloud facts:
    storage.ossBucketNaming), the key named: `bucketName`, or the prefix with the stack."""
    from alibabacloud_oss_v2.validation import is_valid_bucket_name

    if cfg.model_store.type != "oss" or cfg.llm.model_pvc:
        return []
    name = generated_bucket_name(cfg)
    if is_valid_bucket_name(name):
        return []
    rule = cloud_facts.value("storage", "ossBucketNaming")["rule"]
    if cfg.model_store.bucket_name:
        return [("modelStore.bucketName", f"{name!r} is not an OSS bucket name ({rule})")]
    return [
        (
            "modelStore.bucketPrefix",
            f"the bucket would be named {cfg.model_store.bucket_prefix}-{cfg.stack}-<8 hex>, "
            f"not an OSS bucket name ({rule}); the stack name {cfg.stack!r} is part of it: "
            "set modelStore.bucketName to a valid name",
        )
    ]


def _check_registry(cfg: StackConfig) -> list[tuple[str, str]]:
    """Every image must be pullable on a new account (see `Registry`)."""
    registry, problems = cfg.registry, []
    own = [side for side in ("llm", "chat") if not getattr(cfg, side).image.repository]
    if registry.edition == "enterprise":
        for key in ("instance_id", "endpoint"):
            if own and not getattr(registry, key):
                problems.append(
                    (
                        f"registry.{to_camel(key)}",
                        "required with edition "
                        "enterprise: the ACR Enterprise Edition instance to pull from",
                    )
                )
    elif registry.pull_password and not registry.pull_username:
        problems.append(
            (
                "registry.pullUsername",
                "required with registry.pullPassword: the "
                "account's registry login name (ACR console, Access Credential)",
            )
        )
    return problems


def _check_sign_in(cfg: StackConfig) -> list[tuple[str, str]]:
    """Sign-in needs the issuer and the client id together; a secret needs both."""
    sign_in, problems = cfg.chat.sign_in, []
    if sign_in.issuer and not sign_in.client_id:
        problems.append(
            (
                "chat.signIn.clientId",
                "required with chat.signIn.issuer: the client id of the application "
                "registered at the provider",
            )
        )
    if not sign_in.issuer:
        given = [
            f"chat.signIn.{key}"
            for key in ("clientId", "audience", "publicUrl")
            if getattr(sign_in, to_snake(key))
        ] + (["oidcClientSecret"] if cfg.oidc_client_secret else [])
        if given:
            problems.append(
                (
                    "chat.signIn.issuer",
                    f"required with {', '.join(given)}: the provider's issuer URL, exactly as "
                    "its discovery document names it",
                )
            )
    return problems


def _check_api_server_access(cfg: StackConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for i, cidr in enumerate(cfg.cluster.api_server_allowed_cidrs):
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            problems.append((f"cluster.apiServerAllowedCidrs[{i}]", f"not an IPv4 CIDR: {exc}"))
            continue
        if net.prefixlen == 0:
            problems.append(
                (
                    f"cluster.apiServerAllowedCidrs[{i}]",
                    f"{cidr} opens the API "
                    "server to the internet; give the deployer's or CI runner's egress",
                )
            )
    return problems


def _check_monitoring_auth(cfg: StackConfig) -> list[tuple[str, str]]:
    """Basic auth needs the user and the secret password; neither without it."""
    mon, problems = cfg.monitoring, []
    if mon.auth == "basic":
        if mon.username is None:
            problems.append(
                (
                    "monitoring.username",
                    "required with monitoring.auth basic: the AccessKey ID of a RAM user with "
                    "AliyunPrometheusMetricReadAccess",
                )
            )
        if cfg.prometheus_password is None:
            problems.append(
                (
                    "prometheusPassword",
                    "required with monitoring.auth basic: that user's AccessKey secret "
                    "(pulumi config set --secret prometheusPassword ...)",
                )
            )
    else:
        given = (["monitoring.username"] if mon.username else []) + (
            ["prometheusPassword"] if cfg.prometheus_password else []
        )
        if given:
            problems.append(
                ("monitoring.auth", f"{', '.join(given)} given but auth is {mon.auth!r}: set basic")
            )
    return problems


# Each area's rules and the top-level keys they read: a rule runs when all its keys passed the
# structural check, so one run reports the structural problems and every rule they do not hide.
_RULES = [
    (_network_rules, {"network", "zones"}),
    (_cluster_rules, {"cluster"}),
    (_llm_rules, {"llm", "cluster"}),
    (_autoscaling_rules, {"llm", "cluster", "monitoring", "production"}),
    (_chat_rules, {"chat", "db"}),
    (_imports_rules, {"chat", "cluster"}),
    (_db_rules, {"db", "production"}),
    (_tags_rules, {"tags"}),
    (_check_cloud_facts, {"cluster", "db", "production"}),
    (_check_names_and_regions, {"chat", "llm", "zones"}),
    (_check_api_server_access, {"cluster"}),
    (_check_registry, {"registry", "llm", "chat"}),
    (_check_sign_in, {"chat", "oidcClientSecret"}),
    (_check_monitoring_auth, {"monitoring", "prometheusPassword"}),
    (_check_bucket_name, {"modelStore", "llm"}),
    (_acceleration_rules, {"modelStore", "llm", "cluster"}),
]


def _pydantic_problems(error: ValidationError) -> Problems:
    problems = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (see the config reference in README.md)"
        problems.append((path or "(root)", message))
    return problems


def parse_config(raw: Mapping[str, Any], stack: str) -> StackConfig:
    """Validate `raw` (the `chatchat:*` keys without the namespace) or raise ConfigError naming
    every problem: the structure (types, allowed values, unknown keys) and the rules across keys
    (GPU fit, ECI and DeepGPU-LLM, ADB sizing, volume access modes) in one run."""
    values = {**raw, "stack": stack}
    problems: Problems = []
    broken: set[str] = set()
    try:
        cfg: StackConfig | None = StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
        broken = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
        try:  # the sound keys, with defaults where the broken ones were, for the rules below
            cfg = StackConfig.model_validate({k: v for k, v in values.items() if k not in broken})
        except ValidationError:  # a required key is broken: no rule can run
            cfg = None
    if cfg is not None:
        for rules, keys in _RULES:
            if not keys & broken:
                problems += rules(cfg)
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


def raw_from_config_map(config: Mapping[str, Any]) -> dict[str, Any]:
    """Our keys from a fully qualified config map (`chatchat:llm`, `alicloud:region`, ...).

    The region is the provider's own `alicloud:region`, so that the provider and the config
    can never disagree. Values may be decoded already (stack file) or JSON text (engine).
    """
    raw: dict[str, Any] = {}
    for full_key, value in config.items():
        namespace, _, key = full_key.partition(":")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # a plain string such as `cn-hangzhou`
        if namespace == PROJECT:
            raw[key] = value
        elif full_key == "alicloud:region":
            raw["region"] = value
    if f"{PROJECT}:region" in config:
        raise ConfigError(
            [(f"{PROJECT}:region", "set the region once, as alicloud:region (the provider's key)")]
        )
    if "region" not in raw:
        raise ConfigError(
            [("alicloud:region", "required: the Alibaba Cloud region, e.g. cn-hangzhou")]
        )
    return raw


def raw_from_pulumi() -> dict[str, Any]:
    """Our keys of the running stack."""
    from pulumi.runtime.config import CONFIG, get_config_env

    # The language host passes config in PULUMI_CONFIG; mocks and inline programs set CONFIG.
    return raw_from_config_map({**get_config_env(), **CONFIG.get()})


def load_config() -> StackConfig:
    """The validated config of the running Pulumi stack."""
    import pulumi

    return parse_config(raw_from_pulumi(), pulumi.get_stack())
