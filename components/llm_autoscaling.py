"""Queue-driven replicas of the llm: a KEDA ScaledObject (addon ack-keda, cloud facts
serving.kedaAddon) on the llm Deployment whose Prometheus trigger reads requests waiting plus
running from the managed Prometheus, one replica per `targetRequestsPerReplica`.

With `minReplicas: 0` the llm goes to zero after `idleMinutes` without a request, and the GPU
pool follows through the cluster autoscaler (its `minSize` 0 lets the idle node go). The queue
metrics come from the llm pods themselves, so at zero they cannot wake the llm. The chat API
answers such a request 503 with Retry-After (the llm Service has no endpoint: connection
refused) and counts it in `chat_llm_unavailable_total`; a second Prometheus trigger (`llm-wake`)
reads that counter's increase over the wake window, clamped to 1, so the first request after
idle wakes one replica and never more. KEDA v2.20.2 activates a ScaledObject when any trigger's
value exceeds its activationThreshold (0 here) and scales 0 -> 1; above that, the HPA takes the
largest replica count of its triggers (cloud facts serving.kedaTriggers). An optional cron
trigger (`wakeSchedule`) holds `wakeReplicas` during working hours, so that the first request of
the day finds a loaded model.

`monitoring.auth: basic` (ARMS Prometheus V2 instances require HTTP Basic auth with an
AccessKey) adds a Secret and a KEDA TriggerAuthentication that every Prometheus trigger
references (`authModes: basic`).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import cloud_facts
from components import workload_pod as wp
from components.config import StackConfig
from components.monitoring import queue_query, wake_query

# KEDA's prometheus scaler: authModes "basic", username/password from authParams (v2.20.2)
BASIC_AUTH: dict[str, Any] = cloud_facts.value("serving", "kedaPrometheusBasicAuth")
SCALE_DOWN_STEP_SECONDS = 300  # one replica at a time: a model reload costs minutes


def auth_name(cfg: StackConfig) -> str:
    """The Secret and the TriggerAuthentication of `monitoring.auth: basic`."""
    return f"{cfg.release}-prometheus-auth"


def _prometheus_trigger(cfg: StackConfig, name: str, query: str, threshold: int) -> dict[str, Any]:
    metadata = {
        "serverAddress": cfg.monitoring.prometheus_url,
        "query": query,
        "threshold": str(threshold),
        # any value above 0 activates (wakes) a scaled-to-zero llm at once
        "activationThreshold": "0",
        "ignoreNullValues": "true",  # no series (no pod scraped yet): zero
    }
    trigger: dict[str, Any] = {"type": "prometheus", "name": name, "metadata": metadata}
    if cfg.monitoring.auth == "basic":
        metadata["authModes"] = BASIC_AUTH["authModes"]
        trigger["authenticationRef"] = {"name": auth_name(cfg)}
    return trigger


def scaled_object_spec(cfg: StackConfig) -> dict[str, Any]:
    """The ScaledObject's spec (a table the tests read)."""
    scaling = cfg.llm.autoscaling
    triggers = [
        _prometheus_trigger(cfg, "llm-queue", queue_query(cfg), scaling.target_requests_per_replica)
    ]
    if scaling.min_replicas == 0:  # at zero the queue says nothing: refused requests wake it
        triggers.append(_prometheus_trigger(cfg, "llm-wake-on-request", wake_query(cfg), 1))
    if scaling.wake_schedule is not None:
        wake = scaling.wake_schedule
        triggers.append(
            {
                "type": "cron",
                "name": "llm-wake",
                "metadata": {
                    "timezone": wake.timezone,
                    "start": wake.start,
                    "end": wake.end,
                    "desiredReplicas": str(scaling.wake_replicas),
                },
            }
        )
    return {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": wp.workload_name(cfg, "llm"),
        },
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "pollingInterval": scaling.polling_seconds,
        "cooldownPeriod": scaling.idle_minutes * 60,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleDown": {
                        "stabilizationWindowSeconds": scaling.idle_minutes * 60,
                        "policies": [
                            {
                                "type": "Pods",
                                "value": 1,
                                "periodSeconds": SCALE_DOWN_STEP_SECONDS,
                            }
                        ],
                    }
                }
            }
        },
        "triggers": triggers,
    }


def trigger_authentication_spec(cfg: StackConfig) -> dict[str, Any]:
    """KEDA's prometheus scaler reads `username` and `password` from these parameters."""
    return {
        "secretTargetRef": [
            {"parameter": key, "name": auth_name(cfg), "key": key}
            for key in BASIC_AUTH["authParams"]
        ]
    }


def trigger_authentication(
    name: str,
    cfg: StackConfig,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """The Secret with the Basic credentials and the TriggerAuthentication naming it."""
    labels = wp.component_labels(cfg, "llm")
    metadata = {"name": auth_name(cfg), "namespace": namespace, "labels": labels}
    secret = k8s.core.v1.Secret(
        f"{name}-secret",
        metadata=dict(metadata),
        type="Opaque",
        string_data={
            "username": cfg.monitoring.username or "",
            "password": pulumi.Output.secret(cfg.prometheus_password or ""),
        },
        opts=opts,
    )
    return k8s.apiextensions.CustomResource(
        name,
        api_version="keda.sh/v1alpha1",
        kind="TriggerAuthentication",
        metadata=metadata,
        spec=trigger_authentication_spec(cfg),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret])),
    )


def scaled_object(
    name: str,
    cfg: StackConfig,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    if cfg.monitoring.auth == "basic":
        auth = trigger_authentication(f"{name}-auth", cfg, namespace, opts)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[auth]))
    return k8s.apiextensions.CustomResource(
        name,
        api_version="keda.sh/v1alpha1",
        kind="ScaledObject",
        metadata={
            "name": wp.workload_name(cfg, "llm"),
            "namespace": namespace,
            "labels": wp.component_labels(cfg, "llm"),
        },
        spec=scaled_object_spec(cfg),
        opts=opts,
    )
