"""Queue-driven replicas of the llm: a KEDA ScaledObject (addon ack-keda, cloud facts
serving.kedaAddon) on the llm Deployment whose Prometheus trigger reads requests waiting plus
running from the managed Prometheus, one replica per `targetRequestsPerReplica`.

With `minReplicas: 0` the llm goes to zero after `idleMinutes` without a request, and the GPU
pool follows through the cluster autoscaler (its `minSize` 0 lets the idle node go). The queue
metrics come from the llm pods themselves, so at zero nothing in them can wake the llm: a cron
trigger (`wakeSchedule`) holds `wakeReplicas` during working hours. Meanwhile the chat service
answers 503 with Retry-After (the llm Service has no endpoint: connection refused).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload_pod as wp
from components.config import StackConfig
from components.monitoring import queue_query

SCALE_DOWN_STEP_SECONDS = 300  # one replica at a time: a model reload costs minutes


def scaled_object_spec(cfg: StackConfig) -> dict[str, Any]:
    """The ScaledObject's spec (a table the tests read)."""
    scaling, url = cfg.llm.autoscaling, cfg.monitoring.prometheus_url
    triggers: list[dict[str, Any]] = [
        {
            "type": "prometheus",
            "name": "llm-queue",
            "metadata": {
                "serverAddress": url,
                "query": queue_query(cfg),
                "threshold": str(scaling.target_requests_per_replica),
                # any request waiting or running wakes a scaled-to-zero llm at once
                "activationThreshold": "0",
                "ignoreNullValues": "true",  # no llm pod, no series: zero requests
            },
        }
    ]
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


def scaled_object(
    name: str,
    cfg: StackConfig,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
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
