"""Monitoring as code for the managed Prometheus of the cluster (addon ack-arms-prometheus): the
llm's scrape config (a ServiceMonitor), its alert rules (a PrometheusRule) and the Grafana
dashboard (`monitoring/grafana/llm-serving.json`, shipped as a ConfigMap for Grafana's
dashboard sidecar and imported by hand into the managed Grafana).

Which metrics the llm exports depends on its server: our server (DeepGPU-LLM `*-aiacc` models)
or vLLM's own (open-source models on a GPU); `SERVER_METRICS` is that table, and tests prove
every name in it, the dashboard and the rules is exported by the server or by an exporter ACK
runs (GPU exporter, kube-state-metrics). The chat API's `/metrics` (app_images/chat,
`chat_server/metrics.py`) is scraped by a ServiceMonitor of its own: request rates, requests
refused for want of an llm (`chat_llm_unavailable_total`, the wake-up trigger of a
scaled-to-zero llm) and ingestion progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import workload_pod as wp
from components.config import StackConfig
from components.contract import Side

DASHBOARD = Path(__file__).resolve().parent.parent / "monitoring" / "grafana" / "llm-serving.json"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}  # the Grafana dashboard sidecar's convention
Server = Literal["ours", "vllm"]
SERVER_METRICS: dict[Server, dict[str, str]] = {
    "ours": {
        "waiting": "llm_queue_depth",
        "running": "llm_requests_in_flight",
        "ttft_bucket": "llm_time_to_first_token_seconds_bucket",
    },
    "vllm": {
        "waiting": "vllm:num_requests_waiting",
        "running": "vllm:num_requests_running",
        "ttft_bucket": "vllm:time_to_first_token_seconds_bucket",
    },
}


def llm_server(cfg: StackConfig) -> Server:
    """Our server for DeepGPU-LLM models, vLLM's for open-source models (both on GPUs here)."""
    return "ours" if cfg.llm.catalog_entry.is_aiacc else "vllm"


def llm_selector(cfg: StackConfig) -> str:
    """PromQL label matchers of the llm's series (ServiceMonitor targets carry service)."""
    return f'namespace="{cfg.release}",service="{wp.workload_name(cfg, "llm")}"'


def chat_selector(cfg: StackConfig) -> str:
    """PromQL label matchers of the chat API's series."""
    return f'namespace="{cfg.release}",service="{wp.workload_name(cfg, "chat")}"'


def wake_window_seconds(cfg: StackConfig) -> int:
    """How far back a refused request still wakes the llm: at least 2 minutes, and at least
    four scrapes (increase() needs two samples of the grown counter's series)."""
    return max(120, 4 * cfg.monitoring.scrape_interval_seconds)


def wake_query(cfg: StackConfig) -> str:
    """1 while requests were refused for want of an llm in the wake window, else 0: a trigger
    that wakes the llm and never asks for more than one replica."""
    match, window = chat_selector(cfg), wake_window_seconds(cfg)
    return f"clamp_max(sum(increase(chat_llm_unavailable_total{{{match}}}[{window}s])), 1)"


def queue_query(cfg: StackConfig) -> str:
    """Requests waiting plus running, over every llm pod: what the autoscaler divides."""
    names, match = SERVER_METRICS[llm_server(cfg)], llm_selector(cfg)
    return f"sum({names['waiting']}{{{match}}}) + sum({names['running']}{{{match}}})"


def _rules(rules: list[tuple[str, str, str, str, str]]) -> list[dict[str, Any]]:
    """(alert, expr, for, severity, summary) tuples as PrometheusRule rules."""
    return [
        {
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity},
            "annotations": {"summary": summary},
        }
        for name, expr, duration, severity, summary in rules
    ]


def alert_rules(cfg: StackConfig) -> list[dict[str, Any]]:
    """Queue growing, TTFT p95 over target, error ratio, model not loaded."""
    mon, server, match = cfg.monitoring, llm_server(cfg), llm_selector(cfg)
    names = SERVER_METRICS[server]
    minutes = mon.queue_growing_minutes
    if server == "ours":
        errors = (
            f'sum(rate(llm_requests_total{{{match},status=~"5.."}}[5m])) '
            f"/ sum(rate(llm_requests_total{{{match}}}[5m]))"
        )
        not_loaded = f"max by (pod) (llm_model_loaded{{{match}}}) == 0"
    else:
        errors = (
            f'sum(rate(vllm:request_success_total{{{match},finished_reason="abort"}}[5m])) '
            f"/ sum(rate(vllm:request_success_total{{{match}}}[5m]))"
        )
        not_loaded = f"up{{{match}}} == 0"  # vLLM's server listens only once the model is loaded
    rules = [
        (
            "LlmQueueGrowing",
            f"sum(deriv({names['waiting']}{{{match}}}[{minutes}m])) > 0 "
            f"and sum({names['waiting']}{{{match}}}) > 0",
            f"{minutes}m",
            "warning",
            f"requests waiting for the llm have grown for {minutes} minutes",
        ),
        (
            "LlmTimeToFirstTokenHigh",
            f"histogram_quantile(0.95, sum by (le) (rate({names['ttft_bucket']}{{{match}}}[5m])))"
            f" > {mon.ttft_p95_target_seconds:g}",
            "10m",
            "warning",
            f"time to first token p95 is over {mon.ttft_p95_target_seconds:g}s",
        ),
        (
            "LlmErrorRatioHigh",
            f"({errors}) > {mon.error_ratio_max:g}",
            "10m",
            "critical",
            f"more than {mon.error_ratio_max:.0%} of llm requests fail",
        ),
        (
            "LlmModelNotLoaded",
            not_loaded,
            "15m",
            "critical",
            "an llm pod has not loaded its model for 15 minutes",
        ),
    ]
    return _rules(rules)


def import_alert_rules(cfg: StackConfig) -> list[dict[str, Any]]:
    """Bulk imports (`chat.imports`), which `pulumi up` does not wait for: a pod that failed (the
    shard is retried) and a Job that gave up. kube-state-metrics' job metrics carry `job_name`
    and `namespace`; `kube_job_failed` also `condition` (kubernetes/kube-state-metrics
    docs/job-metrics.md, internal/store/job.go). Files that fail inside a pod that succeeds are
    in `import_status`, not here."""
    if not cfg.chat.imports:
        return []
    match = f'namespace="{cfg.release}",job_name=~"import-.*"'
    rules = [
        (
            "ChatImportPodsFailed",
            f"sum by (job_name) (kube_job_status_failed{{{match}}}) > 0",
            "0m",
            "warning",
            "pods of bulk import {{ $labels.job_name }} failed; the shard is retried up to "
            "retriesPerShard times (kubectl logs, and import_status for failed files)",
        ),
        (
            "ChatImportFailed",
            f'max by (job_name) (kube_job_failed{{{match},condition="true"}}) == 1',
            "0m",
            "critical",
            "bulk import {{ $labels.job_name }} failed: a shard ran out of retries or "
            "maxFailedShards was reached; fix the cause and raise `rerun`",
        ),
    ]
    return _rules(rules)


def service_monitor_spec(cfg: StackConfig, side: Side) -> dict[str, Any]:
    """Scrape `/metrics` on the side's `api` port (llm 8888, chat 7861)."""
    return {
        "selector": {"matchLabels": wp.component_labels(cfg, side)},
        "namespaceSelector": {"matchNames": [cfg.release]},
        "endpoints": [
            {
                "port": "api",
                "path": "/metrics",
                "scheme": "http",
                "interval": f"{cfg.monitoring.scrape_interval_seconds}s",
            }
        ],
    }


def dashboard_json() -> str:
    return DASHBOARD.read_text(encoding="utf-8")


class LlmMonitoring(pulumi.ComponentResource):
    """ServiceMonitors of the llm and the chat API, the llm's PrometheusRule, and the dashboard
    ConfigMap. Part of the
    llm workload for `tools model-change`: its rules follow the model's server."""

    service_monitor_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:monitoring:LlmMonitoring", name, None, opts)
        json.loads(dashboard_json())  # a broken dashboard fails the plan, not the import
        # The CRDs come with the addons (the component's depends_on): pass it on.
        child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=opts.depends_on if opts else None
        )
        labels = wp.component_labels(cfg, "monitoring")
        target = wp.workload_name(cfg, "llm")
        monitor = k8s.apiextensions.CustomResource(
            f"{name}-llm-servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": target, "namespace": namespace, "labels": labels},
            spec=service_monitor_spec(cfg, "llm"),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-chat-servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={
                "name": wp.workload_name(cfg, "chat"),
                "namespace": namespace,
                "labels": labels,
            },
            spec=service_monitor_spec(cfg, "chat"),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-llm-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": target, "namespace": namespace, "labels": labels},
            spec={
                "groups": [
                    {"name": "llm-serving", "rules": alert_rules(cfg)},
                    *(
                        [{"name": "chat-imports", "rules": import_alert_rules(cfg)}]
                        if cfg.chat.imports
                        else []
                    ),
                ]
            },
            opts=child,
        )
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": f"{cfg.release}-llm-serving-dashboard",
                "namespace": namespace,
                "labels": {**labels, **DASHBOARD_LABEL},
            },
            data={DASHBOARD.name: dashboard_json()},
            opts=child,
        )
        self.service_monitor_name = monitor.metadata["name"]
        self.register_outputs({"serviceMonitorName": self.service_monitor_name})
