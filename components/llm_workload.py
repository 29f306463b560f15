"""The llm workload: OpenAI-compatible inference on 8888, on a GPU pool whose card holds the
model (or on ECI), plus the DeepGPU-LLM conversion Job for `*-aiacc` models.

Conversion, exactly when needed: offline we cannot look into the model store, so the Job exists
exactly when the model is an `-aiacc` model. It is idempotent (`llm_server.convert` exits 0 when
the converted directory carries its completion marker), so on a store that already holds the
converted weights it finishes in seconds. Its name carries the model, so switching models makes a
new Job. The Deployment is declared after the Job has completed (Pulumi awaits Jobs), which also
keeps the Job and the llm pod from competing for a single GPU node; an init container waits for
the completion marker, so a pod that starts without that ordering (`pulumi up --target`, a
converted directory removed by hand) never loads half-written weights.

The Job's pods run at a higher PriorityClass than the llm: on a pool with no free GPU (dev has one
node) the scheduler evicts an llm pod of the old model for the conversion instead of leaving the
Job pending until Pulumi times out; the Deployment rolls to the new model once the Job is done.

With a Fluid cache (`modelStore.acceleration.type: fluid`) the llm mounts the cache's PVC; its
warm-up DataLoad runs after the Job (the files exist) and before the Deployment.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import contract, llm_autoscaling, llm_capacity
from components import workload_pod as wp
from components.catalog import MODEL_ROOT
from components.config import StackConfig
from components.contract import LLM_PORT
from components.model_cache import ModelCache

# Written last by `python -m llm_server.convert` (app_images/llm/llm_server/convert.py: MARKER).
CONVERSION_MARKER = ".aiacc-conversion-complete.json"
CONVERSION_TIMEOUT = "90m"  # a 13B conversion from network storage
CONVERSION_PRIORITY = 1000  # above the llm pods' default 0, far below system-critical


class LlmWorkload(pulumi.ComponentResource):
    """ServiceAccount, conversion Job (aiacc models), Deployment, Service, PDB and autoscaler of
    the llm."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    conversion_job_name: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        image: pulumi.Input[str],
        model_pvc_name: pulumi.Input[str],
        model_writer_pvc_name: pulumi.Input[str],
        api_key_secret_name: pulumi.Input[str],
        model_cache: ModelCache | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`model_cache`: the Fluid cache the llm reads the model through (its PVC replaces
        `model_pvc_name`; the conversion Job keeps writing through `model_writer_pvc_name`)."""
        super().__init__("chatchat:llm_workload:LlmWorkload", name, None, opts)
        model = cfg.llm.catalog_entry
        # Children do not inherit the component's depends_on (the node pools): pass it on.
        child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=opts.depends_on if opts else None
        )
        release_name = wp.workload_name(cfg, "llm")
        account = wp.service_account(f"{name}-account", cfg, "llm", namespace, child)
        placement = wp.placement(cfg, "llm")

        job = None
        if model.is_aiacc:
            job = self._conversion_job(
                name, cfg, namespace, image, model_writer_pvc_name, account, placement, child
            )
        annotations = {
            contract.MODEL_ANNOTATION: model.name,
            contract.MODEL_KIND_ANNOTATION: model.kind,
            contract.GPU_MEMORY_REQUIRED_ANNOTATION: str(model.required_gpu_gib(cfg.llm.load8bit)),
            contract.LOAD8BIT_ANNOTATION: str(cfg.llm.effective_load8bit).lower(),
        }
        probes = cfg.llm.probes
        # Our server (DeepGPU-LLM models) answers /health before the model is loaded and
        # /v1/models after; vLLM's (open-source models) listens only once loaded, and its
        # /v1/models needs the API key, which a kubelet probe cannot send.
        ready_path = "/v1/models" if model.is_aiacc else "/health"
        server = {
            "name": "llm",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "api", "containerPort": LLM_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "LLM_MODEL", "value": model.name},
                {"name": "LOAD_8BIT", "value": str(cfg.llm.effective_load8bit).lower()},
                {"name": "LLM_MODEL_ROOT", "value": MODEL_ROOT},
                {"name": "LLM_PORT", "value": str(LLM_PORT)},
                wp.HOME_ENV,
                wp.secret_env("LLM_API_KEY", api_key_secret_name, "llm-api-key"),
            ],
            "resources": cfg.pod_resources("llm"),
            # Loading (or a first conversion) of a 13B model takes minutes: only the startup
            # probe waits that long; readiness answers once the model is loaded.
            "startupProbe": wp.http_probe(probes.startup, ready_path, LLM_PORT),
            "readinessProbe": wp.http_probe(probes.readiness, ready_path, LLM_PORT),
            "livenessProbe": wp.http_probe(probes.liveness, "/health", LLM_PORT),
            "securityContext": wp.container_security(),
            "volumeMounts": [wp.model_mount(), wp.TMP_MOUNT],
        }
        cache_waits: list[pulumi.Resource] = []
        if model_cache is not None:
            model_pvc_name = model_cache.pvc_name
            warm_up = model_cache.warm_up(f"{name}-warm-up", [job] if job else [], child)
            cache_waits = [model_cache.runtime, *([warm_up] if warm_up else [])]
        init = [self._wait_for_conversion(model.directory, image)] if model.is_aiacc else None
        scaling = cfg.llm.autoscaling
        # KEDA owns the replica count once it exists: Pulumi sets it only at create.
        owned = pulumi.ResourceOptions(
            ignore_changes=["spec.replicas"] if scaling.enabled else None
        )
        deployment = wp.deployment(
            f"{name}-deployment",
            cfg,
            "llm",
            namespace,
            annotations=annotations,
            # A surge pod only when the GPU pools can grow by its GPUs (llm_capacity.rollout).
            strategy=llm_capacity.rollout(cfg).strategy,
            pod=wp.pod_spec(
                service_account=release_name,
                containers=[server],
                init_containers=init,
                volumes=[wp.model_volume(model_pvc_name)],
                **placement,
            ),
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions.merge(child, owned),
                pulumi.ResourceOptions(depends_on=[account, *([job] if job else []), *cache_waits]),
            ),
        )
        least = scaling.min_replicas if scaling.enabled else None
        service = wp.expose(name, cfg, "llm", namespace, child, least_replicas=least)
        if scaling.enabled:
            llm_autoscaling.scaled_object(
                f"{name}-autoscaler",
                cfg,
                namespace,
                pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[deployment])
                ),
            )

        self.deployment_name = deployment.metadata["name"]
        self.service_name = service.metadata["name"]
        self.endpoint = wp.service_url(service, LLM_PORT)
        self.conversion_job_name = job.metadata["name"] if job else None
        self.register_outputs(
            {
                "deploymentName": self.deployment_name,
                "serviceName": self.service_name,
                "endpoint": self.endpoint,
                "conversionJobName": self.conversion_job_name,
            }
        )

    @staticmethod
    def _wait_for_conversion(directory: str, image: pulumi.Input[str]) -> dict[str, Any]:
        marker = f"{MODEL_ROOT}/{directory}/{CONVERSION_MARKER}"
        return {
            "name": "wait-for-conversion",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": [
                "sh",
                "-c",
                f'until [ -f "{marker}" ]; do echo "waiting for {marker}"; sleep 15; done',
            ],
            "resources": {
                "requests": {"cpu": "50m", "memory": "32Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"},
            },
            "securityContext": wp.container_security(),
            "volumeMounts": [wp.model_mount(), wp.TMP_MOUNT],
        }

    @staticmethod
    def _conversion_job(
        name: str,
        cfg: StackConfig,
        namespace: pulumi.Input[str],
        image: pulumi.Input[str],
        writer_pvc: pulumi.Input[str],
        account: k8s.core.v1.ServiceAccount,
        placement: dict[str, Any],
        child: pulumi.ResourceOptions,
    ) -> k8s.batch.v1.Job:
        """The vendor converter on a fitting GPU node, the model store mounted writable."""
        model = cfg.llm.catalog_entry
        labels = wp.component_labels(cfg, "llm-convert")
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-conversion-priority",
            metadata={"name": f"{cfg.release}-model-conversion", "labels": labels},
            value=CONVERSION_PRIORITY,
            global_default=False,
            preemption_policy="PreemptLowerPriority",
            description="DeepGPU-LLM conversion may evict an llm pod of the previous model",
            opts=child,
        )
        converter = {
            "name": "convert",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": [
                "python",
                "-m",
                "llm_server.convert",
                "--model",
                model.name,
                "--root",
                MODEL_ROOT,
            ],
            "env": [wp.HOME_ENV],
            "resources": cfg.pod_resources("llm"),
            "securityContext": wp.container_security(),
            "volumeMounts": [wp.model_mount(read_only=False), wp.TMP_MOUNT],
        }
        return k8s.batch.v1.Job(
            f"{name}-convert-{model.name}",
            metadata={"name": f"convert-{model.name}", "namespace": namespace, "labels": labels},
            spec={
                "backoffLimit": 2,
                # No ttlSecondsAfterFinished: a Job the cluster deletes is recreated by the next
                # `pulumi up --refresh`, and its GPU request would evict the serving llm. The
                # finished Job holds no resources and goes when the model changes.
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {contract.MODEL_ANNOTATION: model.name},
                    },
                    "spec": wp.with_pull_secrets(
                        cfg,
                        wp.pod_spec(
                            service_account=wp.workload_name(cfg, "llm"),
                            containers=[converter],
                            restart_policy="Never",
                            priorityClassName=priority.metadata["name"],
                            volumes=[wp.model_volume(writer_pvc, read_only=False)],
                            **placement,
                        ),
                    ),
                },
            },
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[account],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=CONVERSION_TIMEOUT, update=CONVERSION_TIMEOUT
                    ),
                ),
            ),
        )
