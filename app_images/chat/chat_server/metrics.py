"""The chat API's Prometheus metrics, served on `/metrics` (7861) for the managed Prometheus.

- `chat_requests_total{route,method,status}` and `chat_request_duration_seconds{route,method}`:
  every request, by route template (`/knowledge_base/{name}`, never the raw path, so that no
  client can grow the series without bound; paths no route matches count as `unmatched`). The
  duration runs until the response is sent in full, streams included.
- `chat_llm_unavailable_total{route}`: requests answered 503 because no llm answered (at zero
  replicas the llm Service has no endpoint). The llm's KEDA ScaledObject has a trigger on this
  counter: it is what wakes a scaled-to-zero llm on the first request after idle. Liveness
  (`/health`) asks the llm too but never counts: a probe must not keep the llm awake.
- `chat_ingested_files_total`, `chat_ingested_chunks_total`, `chat_ingest_failures_total` and
  `chat_ingestions_running`: ingestion progress of `KnowledgeService.ingest`.
- `chat_ingest_stage_seconds{stage}` (a summary: `_sum` seconds, `_count` calls) where an
  ingestion's time goes: `parse` (one file parsed, fingerprinted and split on a parse thread,
  the wait for a parse worker process included), `embed` (one window's embedding calls),
  `write` (the store's writes: ids, vectors, metadata, old vectors out). The stages overlap
  (kb/pipeline.py), so their sum exceeds the wall time; per chunk, `write` growing while
  `embed` stays flat is a store that slows as it grows, both growing a slower machine.

One registry per process. The API runs as one uvicorn process (no `--workers`, `chat_server.api`
calls `uvicorn.run(app)`), and the parse worker processes count nothing (their results are
counted in the API process), so prometheus_client's multiprocess mode is not needed. Several
API processes per pod would each serve only their own counts: that would need its multiprocess
mode (PROMETHEUS_MULTIPROC_DIR) first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import ParamSpec, Protocol, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _Report(Protocol):  # what an ingestion reports (chat_server.kb.service.IngestReport)
    embedded_files: list[str]
    chunks: int


P = ParamSpec("P")
R = TypeVar("R", bound=_Report)
REGISTRY = CollectorRegistry()
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "chat_requests_total",
    "Requests answered by the chat API, by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "chat_request_duration_seconds",
    "Time from request to the last byte of the response (streams included)",
    ["route", "method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
LLM_UNAVAILABLE = Counter(
    "chat_llm_unavailable_total",
    "Requests refused (503 + Retry-After) because no llm answered, by route template",
    ["route"],
    registry=REGISTRY,
)
INGESTED_FILES = Counter(
    "chat_ingested_files_total", "Files embedded into a knowledge base", registry=REGISTRY
)
INGESTED_CHUNKS = Counter(
    "chat_ingested_chunks_total", "Chunks embedded into a knowledge base", registry=REGISTRY
)
INGEST_FAILURES = Counter(
    "chat_ingest_failures_total", "Ingestions that stored nothing (an error)", registry=REGISTRY
)
INGESTIONS_RUNNING = Gauge(
    "chat_ingestions_running", "Ingestions in progress now", registry=REGISTRY
)
INGEST_STAGES = ("parse", "embed", "write")
INGEST_STAGE_SECONDS = Summary(
    "chat_ingest_stage_seconds",
    "Seconds spent in each ingestion stage (parse, embed, write); the stages overlap",
    ["stage"],
    registry=REGISTRY,
)
for _stage in INGEST_STAGES:  # every series from the start: rates need a first sample at 0
    INGEST_STAGE_SECONDS.labels(stage=_stage)


def timed_stage(stage: str) -> AbstractContextManager[object]:
    """A `with` block's wall time, added to `chat_ingest_stage_seconds{stage}`."""
    if stage not in INGEST_STAGES:
        raise ValueError(f"unknown ingestion stage {stage!r}")
    return INGEST_STAGE_SECONDS.labels(stage=stage).time()


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def route_of(scope: Scope) -> str:
    """The matched route's template (the router sets it on the scope), else `unmatched`. The
    framework's own pages (`/openapi.json`, `/docs`) set no route but an endpoint, and have no
    path parameters: their path is their template."""
    route = getattr(scope.get("route"), "path", None)
    if route is None and "endpoint" in scope and not scope.get("path_params"):
        route = scope["path"]
    return route or UNMATCHED


def prime(routes: Iterable[str]) -> None:
    """Create the llm-unavailable series at 0 for every route: a series born at its first
    increment reads as no increase to PromQL's increase(), so the first refusal after a chat
    pod starts would not wake the llm."""
    for route in routes:
        LLM_UNAVAILABLE.labels(route=route)


def llm_unavailable(scope: Scope) -> None:
    LLM_UNAVAILABLE.labels(route=route_of(scope)).inc()


def counted_ingestion(ingest: Callable[P, R]) -> Callable[P, R]:
    """Decorates `KnowledgeService.ingest`: running while it runs, a failure when it raises,
    and the files and chunks its report says it embedded."""

    @functools.wraps(ingest)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        with INGESTIONS_RUNNING.track_inprogress():
            try:
                report = ingest(*args, **kwargs)
            except BaseException:
                INGEST_FAILURES.inc()
                raise
        INGESTED_FILES.inc(len(report.embedded_files))
        INGESTED_CHUNKS.inc(report.chunks)
        return report

    return counted


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request once its response has ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = route_of(scope), scope["method"]
            REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            REQUEST_SECONDS.labels(route=route, method=method).observe(
                time.perf_counter() - started
            )
