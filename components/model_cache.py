"""A Fluid cache (ACK's ack-fluid, JindoRuntime) in front of the OSS model store.

A Dataset names the bucket prefix and its internal endpoint; a JindoRuntime of the same name runs
the cache workers; Fluid then makes a PVC of that name (cloud facts storage.fluidDatasetPvc),
which the llm mounts read-only at /llm-model instead of the static ossfs PVC. The writers (the
DeepGPU-LLM conversion Job, uploads) keep the static RRSA volume: the cache only reads.

JindoRuntime reads OSS with an AccessKey pair only (cloud facts storage.fluidOssCredentials: no
RRSA), so the Dataset refers to an existing Secret by name; the stack never holds the key.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import cloud_facts, contract
from components.config import FluidCache, StackConfig
from components.workload_pod import GPU_TOLERATION, SYSTEM_POOL_SELECTOR, component_labels

CRDS: dict[str, Any] = cloud_facts.value("storage", "fluidCrds")
API_VERSION: str = CRDS["apiVersion"]
DATALOAD_DONE: str = cloud_facts.value("storage", "fluidDataLoad")["donePhase"]
# The Secret's keys for the AccessKey pair (cloud facts storage.fluidOssCredentials).
ACCESS_KEY_ID, ACCESS_KEY_SECRET = "fs.oss.accessKeyId", "fs.oss.accessKeySecret"
MEM_PATH = "/dev/shm"  # an emptyDir in memory
SSD_PATH = "/var/lib/chatchat/model-cache"  # a hostPath on the worker node's system disk
WARM_UP_TIMEOUT = "40m"  # a 26 GiB model at the planning 100 MB/s from OSS is about 5 minutes


def dataset_name(cfg: StackConfig) -> str:
    """The Dataset, its JindoRuntime and the PVC Fluid makes all carry this name."""
    return f"{cfg.release}-model-cache"


def dataset_spec(cfg: StackConfig, bucket: str, endpoint: str) -> dict[str, Any]:
    fluid = _settings(cfg)
    prefix = cfg.model_store.prefix.strip("/")
    secret = fluid.credentials_secret
    return {
        "accessModes": ["ReadOnlyMany"],
        "mounts": [
            {
                "name": "models",
                "mountPoint": f"oss://{bucket}/{prefix}/" if prefix else f"oss://{bucket}/",
                "path": "/",  # the model directories at the volume root, as on the ossfs PV
                "readOnly": True,
                "options": {"fs.oss.endpoint": endpoint},
                "encryptOptions": [
                    {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                    for key in (ACCESS_KEY_ID, ACCESS_KEY_SECRET)
                ],
            }
        ],
    }


def runtime_spec(cfg: StackConfig) -> dict[str, Any]:
    fluid = _settings(cfg)
    level: dict[str, Any] = {
        "mediumtype": fluid.medium,
        "volumeType": "emptyDir" if fluid.medium == "MEM" else "hostPath",
        "path": MEM_PATH if fluid.medium == "MEM" else SSD_PATH,
        "quota": fluid.quota,
        "high": "0.95",
        "low": "0.7",
    }
    worker: dict[str, Any] = {"nodeSelector": {contract.NODE_POOL_LABEL: fluid.worker_pool}}
    if fluid.worker_pool != contract.SYSTEM_POOL:
        worker["tolerations"] = [dict(GPU_TOLERATION)]
    if fluid.medium == "MEM":
        # An in-memory cache is the worker's memory: the scheduler must find room for it.
        worker["resources"] = {"requests": {"memory": fluid.quota}}
    return {
        "replicas": fluid.workers,
        "tieredstore": {"levels": [level]},
        "master": {"nodeSelector": dict(SYSTEM_POOL_SELECTOR)},
        "worker": worker,
        # The FUSE client runs where the llm pod runs: on the tainted GPU nodes.
        "fuse": {"tolerations": [dict(GPU_TOLERATION)]},
    }


def dataload_spec(cfg: StackConfig, namespace: str) -> dict[str, Any]:
    return {
        "dataset": {"name": dataset_name(cfg), "namespace": namespace},
        "loadMetadata": True,  # the conversion Job wrote through the static volume meanwhile
        "target": [{"path": f"/{cfg.llm.catalog_entry.directory}", "replicas": 1}],
    }


def _settings(cfg: StackConfig) -> FluidCache:
    fluid = cfg.model_store.fluid
    if fluid is None:
        raise ValueError("modelStore.acceleration.type is not fluid")
    return fluid


class ModelCache(pulumi.ComponentResource):
    """Dataset + JindoRuntime over the model bucket; `pvc_name` is the PVC Fluid makes."""

    pvc_name: pulumi.Output[str]
    runtime: k8s.apiextensions.CustomResource

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        bucket: pulumi.Input[str],
        endpoint: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`opts.depends_on`: the ack-fluid addon that brings the CRDs (passed to children)."""
        super().__init__("chatchat:model_cache:ModelCache", name, None, opts)
        self._cfg, self._namespace = cfg, namespace
        _settings(cfg)  # refuses a config without fluid before any child
        self._child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=opts.depends_on if opts else None
        )
        metadata = {
            "name": dataset_name(cfg),
            "namespace": namespace,
            "labels": component_labels(cfg, "model-cache"),
        }
        dataset = k8s.apiextensions.CustomResource(
            f"{name}-dataset",
            api_version=API_VERSION,
            kind="Dataset",
            metadata=metadata,
            spec=pulumi.Output.all(bucket, endpoint).apply(lambda a: dataset_spec(cfg, a[0], a[1])),
            opts=self._child,
        )
        self.runtime = k8s.apiextensions.CustomResource(
            f"{name}-runtime",
            api_version=API_VERSION,
            kind="JindoRuntime",
            metadata=dict(metadata),
            spec=runtime_spec(cfg),
            opts=pulumi.ResourceOptions.merge(
                self._child, pulumi.ResourceOptions(depends_on=[dataset])
            ),
        )
        # Fluid makes the PVC once the runtime is bound: the name is known, the object is not
        # ours; a pod mounting it depends on `runtime`.
        self.pvc_name = pulumi.Output.from_input(dataset_name(cfg))
        self.register_outputs({"pvcName": self.pvc_name})

    def warm_up(
        self, name: str, after: list[pulumi.Resource], opts: pulumi.ResourceOptions
    ) -> pulumi.Resource | None:
        """A DataLoad of the llm's model directory, declared by the llm workload (`opts`: its
        child options; the warm-up follows its model) after `after` (the conversion Job that
        writes the directory); `pulumi up` waits until Fluid reports it Complete. None when
        `warmUp` is off."""
        cfg = self._cfg
        if not _settings(cfg).warm_up:
            return None
        model = cfg.llm.catalog_entry
        return k8s.apiextensions.CustomResource(
            f"{name}-{model.name}",
            api_version=API_VERSION,
            kind="DataLoad",
            metadata={
                # One per model: a model change loads the new directory, the old DataLoad goes.
                "name": f"{cfg.release}-warm-up-{model.name}",
                "namespace": self._namespace,
                "labels": component_labels(cfg, "model-cache"),
                "annotations": {
                    contract.MODEL_ANNOTATION: model.name,
                    # pulumi-kubernetes' await annotation (4.18+): wait for Fluid's phase.
                    "pulumi.com/waitFor": f"jsonpath={{.status.phase}}={DATALOAD_DONE}",
                },
            },
            spec=pulumi.Output.from_input(self._namespace).apply(lambda ns: dataload_spec(cfg, ns)),
            opts=pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    depends_on=[self.runtime, *after],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=WARM_UP_TIMEOUT, update=WARM_UP_TIMEOUT
                    ),
                ),
            ),
        )
