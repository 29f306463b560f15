"""Monitoring as code (issue 16, item 4): every metric a dashboard panel, an alert rule or the
autoscaler reads is one our servers or the exporters really expose; the custom resources are
valid against their projects' published CRD schemas; the scrape reaches the llm."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path

import jsonschema
import pytest

from components import cloud_facts
from components.monitoring import DASHBOARD, SERVER_METRICS
from tests.workload_harness import manifests, objects_of, one_object, render_workloads
from tools.checks import crd_schemas
from tools.checks.metric_names import (
    declared_metrics,
    exported_by_package,
    exposed_names,
    metric_names,
)

REPO = Path(__file__).resolve().parent.parent
METRIC_LISTS = REPO / "monitoring" / "metrics"
# Series Prometheus itself writes for every target (prometheus.io docs, "Jobs and instances").
PROMETHEUS_OWN = {"up"}
VARIANTS = {
    "dev": ("dev", {}),
    "staging": ("staging", {}),
    "prod": ("prod", {}),
    "prod-vllm": ("prod", {"llm.model": "qwen-7b-chat"}),  # vLLM's server, its own metrics
}
BASIC = {"monitoring.auth": "basic", "monitoring.username": "LTAI-read", "prometheusPassword": "pw"}


def _listed(name: str) -> dict:
    return json.loads((METRIC_LISTS / name).read_text(encoding="utf-8"))


@cache
def exported() -> frozenset[str]:
    """Our servers' series (from their prometheus_client declarations) and the exporters'."""
    names = exported_by_package(REPO / "app_images" / "llm" / "llm_server")
    names |= exported_by_package(REPO / "app_images" / "chat" / "chat_server")
    for row in _listed("vllm.json")["metrics"]:  # prometheus_client too: same expansion
        names |= exposed_names(row["name"], row["type"])
    for listing in ("dcgm-exporter.json", "kube-state-metrics.json"):
        names |= {row["name"] for row in _listed(listing)["metrics"]}
    return frozenset(names | PROMETHEUS_OWN)


def _unknown(query: str) -> set[str]:
    return metric_names(query) - exported()


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_our_servers_metrics_are_read_from_their_code():
    names = exported_by_package(REPO / "app_images" / "llm" / "llm_server")
    # the gauges the autoscaler divides and the histogram the TTFT alert reads
    assert {"llm_queue_depth", "llm_requests_in_flight", "llm_model_loaded"} <= names
    assert "llm_time_to_first_token_seconds_bucket" in names
    assert "llm_requests_total" in names and "llm_requests" not in names  # counter exposition


def test_every_dashboard_query_names_exposed_metrics():
    queries = dashboard_queries()
    assert len(queries) >= 15
    for query in queries:
        assert not _unknown(query), f"{query}: {_unknown(query)} exposed by no server or exporter"


def test_dashboard_covers_what_operators_watch():
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    wanted = {
        "request rate and errors": "llm_requests_total",
        "TTFT (ours)": "llm_time_to_first_token_seconds_bucket",
        "TTFT (vLLM)": "vllm:time_to_first_token_seconds_bucket",
        "token latency (vLLM)": "vllm:time_per_output_token_seconds_bucket",
        "queue depth": "llm_queue_depth",
        "vLLM queue": "vllm:num_requests_waiting",
        "GPU utilisation": "DCGM_FI_DEV_GPU_UTIL",
        "GPU memory": "DCGM_FI_DEV_FB_USED",
        "job progress": "kube_job_status_succeeded",
        "chat requests": "chat_requests_total",
        "chat latency": "chat_request_duration_seconds_bucket",
        "requests refused for want of an llm": "chat_llm_unavailable_total",
        "ingestion progress": "chat_ingested_chunks_total",
        "ingestions running": "chat_ingestions_running",
    }
    assert not {topic for topic, name in wanted.items() if name not in used}


@pytest.mark.parametrize("case", VARIANTS)
def test_every_alert_and_autoscaler_query_names_exposed_metrics(case):
    stack, overrides = VARIANTS[case]
    rendering = render_workloads(stack, overrides)
    (rules,) = objects_of(rendering, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]}
    imports = objects_of(rendering, "Job")
    imports = [j for j in imports if j["metadata"]["name"].startswith("import-")]
    assert set(alerts) == {
        "LlmQueueGrowing",
        "LlmTimeToFirstTokenHigh",
        "LlmErrorRatioHigh",
        "LlmModelNotLoaded",
        *(("ChatImportPodsFailed", "ChatImportFailed") if imports else ()),
    }
    assert bool(imports) == (case == "staging")  # staging ships an import, the others none
    for job in imports:  # the import rules' job_name pattern matches the Jobs the stack makes
        assert re.fullmatch("import-.*", job["metadata"]["name"])
        assert f'namespace="{job["metadata"]["namespace"]}"' in alerts["ChatImportFailed"]
    queries = list(alerts.values())
    for scaled in objects_of(rendering, "ScaledObject"):
        queries += [
            t["metadata"]["query"]
            for t in scaled["spec"]["triggers"]
            if "query" in t.get("metadata", {})
        ]
    for query in queries:
        assert not _unknown(query), f"{case}: {query}: {_unknown(query)} exposed by nobody"


def test_alert_thresholds_come_from_the_config():
    rendering = render_workloads("prod")  # ttftP95TargetSeconds: 3
    (rules,) = objects_of(rendering, "PrometheusRule")
    ttft = next(
        r for g in rules["spec"]["groups"] for r in g["rules"] if "FirstToken" in r["alert"]
    )
    assert ttft["expr"].endswith("> 3")


def test_the_check_catches_a_misspelt_metric():
    assert _unknown('sum(llm_queue_depht{namespace="chatchat"})') == {"llm_queue_depht"}
    assert _unknown("sum(rate(vllm:num_requests_waiting_total[5m]))")  # a gauge has no _total
    with pytest.raises(ValueError, match="not PromQL"):
        metric_names("sum(rate(llm_requests_total[5m])")


def test_declarations_are_parsed_not_guessed(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from prometheus_client import Counter, Histogram\n"
        "a = Counter('jobs_done_total', 'x')\n"
        "b = Histogram(name='wait_seconds', documentation='y')\n"
    )
    assert declared_metrics(source) == [
        ("jobs_done_total", "counter"),
        ("wait_seconds", "histogram"),
    ]
    assert exposed_names("jobs_done_total", "counter") == {"jobs_done_total", "jobs_done_created"}


def test_server_table_and_facts_name_real_metrics():
    for names in SERVER_METRICS.values():
        assert set(names.values()) <= exported()
    assert set(cloud_facts.value("serving", "gpuExporterMetrics")) <= exported()


def test_metric_lists_record_their_pinned_source():
    for listing in METRIC_LISTS.glob("*.json"):
        doc = json.loads(listing.read_text(encoding="utf-8"))
        assert doc["source"].startswith("github:") and len(doc["commit"]) == 40, listing.name


@pytest.mark.parametrize("case", [*VARIANTS, "dev-basic-auth"])
def test_custom_resources_validate_against_their_published_schemas(case):
    stack, overrides = VARIANTS[case] if case in VARIANTS else ("dev", BASIC)
    custom = [m for m in manifests(render_workloads(stack, overrides)) if crd_schemas.is_custom(m)]
    kinds = {"ScaledObject", "ServiceMonitor", "PrometheusRule"}
    assert {m["kind"] for m in custom} == (
        kinds | {"TriggerAuthentication"} if overrides == BASIC else kinds
    )
    for manifest in custom:
        crd_schemas.validate(manifest)


def test_crd_validation_rejects_what_the_api_server_would_drop_or_refuse():
    rendering = render_workloads("dev")
    (scaled,) = objects_of(rendering, "ScaledObject")
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["minReplicas"] = misspelt["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        crd_schemas.validate(misspelt)
    monitor = one_object(rendering, "ServiceMonitor", "llm-chatchat")
    wrong_type = copy.deepcopy(monitor)
    wrong_type["spec"]["endpoints"] = {"port": "api"}
    with pytest.raises(jsonschema.ValidationError):
        crd_schemas.validate(wrong_type)
    with pytest.raises(crd_schemas.SchemaNotVendored, match=r"keda\.sh/v1alpha1 ScaledJob"):
        crd_schemas.validate({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob"})


def test_vendored_schemas_name_their_release():
    for (_api_version, kind), doc in crd_schemas.vendored().items():
        assert "@ v" in doc["source"] and doc["openAPIV3Schema"]["type"] == "object", kind


@pytest.mark.parametrize(("side", "port"), [("llm", 8888), ("chat", 7861)])
def test_the_service_monitors_select_their_service_and_its_api_port(side, port):
    rendering = render_workloads("dev")
    monitor = one_object(rendering, "ServiceMonitor", f"{side}-chatchat")
    service = one_object(rendering, "Service", f"{side}-chatchat")
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    # selects that Service only (the chat and llm labels differ)
    other = one_object(rendering, "Service", f"{'chat' if side == 'llm' else 'llm'}-chatchat")
    other_labels = other["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert not all(other_labels.get(k) == v for k, v in selector.items())
    scraped = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {p["port"] for p in service["spec"]["ports"] if p["name"] in scraped} == {port}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_chat_metrics_are_read_from_the_chat_code():
    names = exported_by_package(REPO / "app_images" / "chat" / "chat_server")
    assert {
        "chat_llm_unavailable_total",
        "chat_requests_total",
        "chat_request_duration_seconds_bucket",
        "chat_ingested_files_total",
        "chat_ingested_chunks_total",
        "chat_ingestions_running",
    } <= names
    assert _unknown("sum(chat_llm_unavailable)") == {"chat_llm_unavailable"}  # counter: _total


def _scraper_ports(policy: dict, scraper: str) -> set[int]:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": scraper}}}
    return {
        port["port"]
        for rule in policy["spec"]["ingress"]
        if peer in rule["from"]
        for port in rule["ports"]
    }


def test_the_network_policy_lets_the_scraper_reach_the_metrics_ports_only():
    rendering = render_workloads("dev")
    scraper = rendering.config.monitoring.scraper_namespace
    llm = one_object(rendering, "NetworkPolicy", "chatchat-llm-ingress")
    chat = one_object(rendering, "NetworkPolicy", "chatchat-chat-ingress")
    assert _scraper_ports(llm, scraper) == {8888}
    assert _scraper_ports(chat, scraper) == {7861}  # the API's /metrics, not the web UI
    off = render_workloads("dev", {"monitoring.enabled": False, "llm.autoscaling.enabled": False})
    for role in ("llm", "chat"):
        policy = one_object(off, "NetworkPolicy", f"chatchat-{role}-ingress")
        assert not [
            s
            for rule in policy["spec"]["ingress"]
            for s in rule["from"]
            if "namespaceSelector" in s
        ]
    assert objects_of(off, "ServiceMonitor") == []
