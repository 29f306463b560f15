"""Prometheus metrics of one server instance (own registry, so apps in tests do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llm_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "llm_prompt_tokens", "Prompt tokens processed", registry=self.registry
        )
        self.completion_tokens = Counter(
            "llm_completion_tokens", "Completion tokens generated", registry=self.registry
        )
        self.time_to_first_token = Histogram(
            "llm_time_to_first_token_seconds",
            "Time from admission to the first token",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "llm_queue_depth", "Requests waiting for a generation slot", registry=self.registry
        )
        self.in_flight = Gauge(
            "llm_requests_in_flight", "Generations running now", registry=self.registry
        )
        self.model_loaded = Gauge(
            "llm_model_loaded", "1 once the model answers requests", registry=self.registry
        )
