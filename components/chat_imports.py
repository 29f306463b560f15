"""Bulk imports (`chat.imports`): each fills one knowledge base from an OSS prefix, a NAS
directory or an existing PVC, as an Indexed Job of the chat image's worker
(`python -m chat_server.bulk_import run`). Pod i of N embeds shard i (`JOB_COMPLETION_INDEX`) of
the sorted file list; every pod is idempotent by content hash, so a retried pod or a re-run
embeds nothing already stored.

Per import: the source's static read-only PV and PVC (OSS through RRSA, like the model store;
NAS over NFSv3), and the Job. The pods mount the models read-only at MODEL_ROOT, the source
read-only at /import and a /tmp emptyDir; no KB volume: vectors go to ADB directly, or for faiss
through the chat API's merge step.

Re-runs and changes. A Job's pod template and completions are immutable, so a changed import
replaces its Job (delete-before-replace: the name is fixed); the new Job runs again and skips
what is stored. `rerun` (a counter in the template's annotations) forces that with no other
change. `pulumi up` does not wait for an import (`pulumi.com/skipAwait`): a 100k-file import
outlasts any deploy; watch it with `kubectl logs` or `GET /knowledge_base/import_status`. There
is no `ttlSecondsAfterFinished`: Pulumi would recreate a Job the cluster deleted on the next
`pulumi up --refresh` and import again; a finished Job holds no resources.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import cloud_facts, storage
from components import workload_pod as wp
from components.chat_workload import store_env
from components.config import BulkImport, StackConfig
from components.contract import IMPORT_COMPONENT
from components.registry import image_reference

SOURCE_ROOT = "/import"
IMPORT_ID_LABEL = "chatchat.io/import-id"
KB_ANNOTATION = "chatchat.io/knowledge-base"
RERUN_ANNOTATION = "chatchat.io/import-rerun"
# Job fields the API server refuses to change (all but parallelism, here): a change replaces.
IMMUTABLE_JOB_FIELDS = (
    "template",
    "completions",
    "completionMode",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "podFailurePolicy",
)
SOURCE_CAPACITY = "1Ti"  # nominal: ossfs and NFS ignore a static PV's capacity
# OSS buckets outside the stack are reached over the region's internal endpoint.
OSS_INTERNAL_ENDPOINT: str = cloud_facts.value("storage", "ossReadOnlyPrefixVolume")["url"]


def import_command(item: BulkImport) -> list[str]:
    """The worker's command line (also what the README tells users to run by hand)."""
    return [
        "python",
        "-m",
        "chat_server.bulk_import",
        "run",
        "--knowledge-base",
        item.knowledge_base,
        "--source",
        SOURCE_ROOT,
        "--import-id",
        item.import_id,
    ]


def failure_policy(item: BulkImport) -> dict[str, Any]:
    """Job failure handling: each shard retried on its own, an eviction or node drain never
    counted against it (the pod is idempotent: it resumes where the last one stopped)."""
    spec: dict[str, Any] = {
        "backoffLimitPerIndex": item.retries_per_shard,
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
    }
    if item.max_failed_shards is not None:
        spec["maxFailedIndexes"] = item.max_failed_shards
    return spec


class ChatImports(pulumi.ComponentResource):
    """ServiceAccount, and per import its source volume and Indexed Job."""

    job_names: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        repository: pulumi.Input[str],
        model_pvc_name: pulumi.Input[str],
        chat_api_url: pulumi.Input[str],
        api_key_secret_name: pulumi.Input[str],
        rrsa: pulumi.Input[Any],
        db_secret_name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:chat_imports:ChatImports", name, None, opts)
        store = store_env(cfg, db_secret_name)
        self._name, self._cfg, self._namespace = name, cfg, namespace
        self._rrsa = pulumi.Output.from_input(rrsa)
        self._k8s = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=opts.depends_on if opts else None
        )
        account_name = f"import-{cfg.release}"
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={
                "name": account_name,
                "namespace": namespace,
                "labels": wp.component_labels(cfg, IMPORT_COMPONENT),
            },
            automount_service_account_token=False,
            opts=self._k8s,
        )
        env: list[dict[str, Any]] = [
            *store.embedding,
            {"name": "CHAT_API_URL", "value": chat_api_url},
            wp.secret_env("CHAT_API_KEY", api_key_secret_name, "chat-api-key"),
            wp.HOME_ENV,
            *store.database,
        ]
        self.job_names = []
        for item in cfg.chat.imports:
            volume, mount = self._source(item)
            job = self._job(item, repository, env, model_pvc_name, volume, mount, account)
            self.job_names.append(job.metadata["name"])
        self.register_outputs({"jobNames": self.job_names})

    def _source(self, item: BulkImport) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pod volume and mount of the import's source, declaring its PV/PVC if needed."""
        source = item.source
        mount: dict[str, Any] = {"name": "source", "mountPath": SOURCE_ROOT, "readOnly": True}
        if source.pvc is not None:
            if source.sub_path:
                mount["subPath"] = source.sub_path
            claim: pulumi.Input[str] = source.pvc
        else:
            cfg, short = self._cfg, item.import_id[:10]
            role = f"{self._name}-{item.job_name}"
            if source.oss is not None:
                bucket, prefix = source.oss.bucket, source.oss.prefix
                role_name = storage.rrsa_oss_role(
                    role,
                    f"{cfg.release}-{cfg.stack}-import-{short}",
                    bucket,
                    prefix,
                    write=False,
                    rrsa=self._rrsa,
                    tags=cfg.resource_tags(),
                    opts=pulumi.ResourceOptions(parent=self),
                    what=f"import into {item.knowledge_base}",
                    policy_description="read-only on one import prefix",
                )
                driver, mount_options = storage.OSS_DRIVER, None
                attributes: dict[str, Any] = {
                    "bucket": bucket,
                    "url": OSS_INTERNAL_ENDPOINT.format(region=cfg.region),
                    "path": f"/{prefix}",
                    "otherOpts": storage.ossfs_options(write=False),
                    "authType": storage.OSS_RRSA["volumeAttributes"]["authType"],
                    "roleName": role_name,
                }
            else:
                assert source.nas is not None  # exactly one source (config)
                driver, mount_options = storage.NAS_DRIVER, storage.NAS_MOUNT_OPTIONS
                attributes = {"server": source.nas.server, "path": source.nas.path, "vers": "3"}
            pv_name = storage.static_volume(
                f"{role}-pv",
                f"{cfg.release}-{cfg.stack}-import-{short}",
                driver,
                "ReadOnlyMany",
                attributes,
                read_only=True,
                size=SOURCE_CAPACITY,
                mount_options=mount_options,
                opts=self._k8s,
            )
            claim = storage.volume_claim(
                f"{role}-pvc",
                f"{cfg.release}-import-{short}",
                self._namespace,
                SOURCE_CAPACITY,
                "ReadOnlyMany",
                "",
                volume_name=pv_name,
                opts=self._k8s,
            )
        claim_ref = {"claimName": claim, "readOnly": True}
        return {"name": "source", "persistentVolumeClaim": claim_ref}, mount

    def _job(
        self,
        item: BulkImport,
        repository: pulumi.Input[str],
        env: list[dict[str, Any]],
        model_pvc_name: pulumi.Input[str],
        volume: dict[str, Any],
        mount: dict[str, Any],
        account: k8s.core.v1.ServiceAccount,
    ) -> k8s.batch.v1.Job:
        cfg = self._cfg
        labels = {
            **wp.component_labels(cfg, IMPORT_COMPONENT),
            IMPORT_ID_LABEL: item.import_id,
        }
        shard_env = [{"name": "IMPORT_SHARD_COUNT", "value": str(item.completions)}]
        if item.gpu:
            shard_env.append({"name": "EMBEDDING_DEVICE", "value": "cuda"})
        image = pulumi.Output.from_input(repository).apply(
            lambda repo: image_reference(repo, cfg.import_image(item.gpu))
        )
        worker = {
            "name": "import",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": import_command(item),
            "env": [*env, *shard_env],
            "resources": item.pod_resources(),
            "securityContext": wp.container_security(),
            "volumeMounts": [wp.model_mount(), wp.TMP_MOUNT, mount],
        }
        # the same nodes as a chat pod of that kind: any GPU pool (tolerating its taint) for a
        # GPU import, the CPU system pool otherwise
        placement: dict[str, Any] = (
            {
                "affinity": wp.gpu_pool_affinity([p.name for p in cfg.cluster.gpu_pools]),
                "tolerations": [dict(wp.GPU_TOLERATION)],
            }
            if item.gpu
            else {"nodeSelector": dict(wp.SYSTEM_POOL_SELECTOR)}
        )
        return k8s.batch.v1.Job(
            f"{self._name}-{item.job_name}",
            metadata={
                "name": item.job_name,
                "namespace": self._namespace,
                "labels": labels,
                "annotations": {
                    KB_ANNOTATION: item.knowledge_base,
                    # an import runs for hours: `pulumi up` must not wait for it
                    "pulumi.com/skipAwait": "true",
                },
            },
            spec={
                "completionMode": "Indexed",
                "completions": item.completions,
                "parallelism": item.parallelism,
                **failure_policy(item),
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {RERUN_ANNOTATION: str(item.rerun)},
                    },
                    "spec": wp.with_pull_secrets(
                        cfg,
                        wp.pod_spec(
                            service_account=f"import-{cfg.release}",
                            containers=[worker],
                            restart_policy="Never",
                            volumes=[wp.model_volume(model_pvc_name), volume],
                            **placement,
                        ),
                    ),
                },
            },
            opts=pulumi.ResourceOptions.merge(
                self._k8s,
                pulumi.ResourceOptions(
                    # a fixed name cannot exist twice: the old Job goes before the new one
                    delete_before_replace=True,
                    depends_on=[account],
                    replace_on_changes=[f"spec.{field}" for field in IMMUTABLE_JOB_FIELDS],
                ),
            ),
        )
