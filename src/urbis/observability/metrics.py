"""Prometheus metrics: HTTP requests by handler and status, latency, and what services report.

Metrics live in one registry per process. With several worker processes (`urbis serve
--workers N`) the parent sets PROMETHEUS_MULTIPROC_DIR and every worker writes its samples
there, so a scrape of any worker answers for all of them (prometheus-client's multiprocess
mode). Gauges computed at scrape time (entities per tenant) come from the store, not from
process memory, and are the same whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets (seconds) around what a broker answers in: sub-millisecond to seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("urbis_http_requests_total", "HTTP requests answered.",
                   ("method", "handler", "status"))
LATENCY = Histogram("urbis_http_request_duration_seconds",
                    "Time from request to the end of the response.", ("method", "handler"),
                    buckets=BUCKETS)
STORE_LATENCY = Histogram("urbis_store_operation_seconds", "Time of store operations.",
                          ("operation",), buckets=BUCKETS)
NOTIFICATIONS = Counter("urbis_notifications_total",
                        "Notification attempts by outcome (sent, retried, failed: given up).",
                        ("outcome",))
AGENT_MEASURES = Counter("urbis_agent_measures_total",
                         "Device measures received by IoT agents, by outcome.",
                         ("agent", "outcome"))
DEVICE_STATE = Counter("urbis_device_state_changes_total",
                       "IoT devices that went offline (silent past their expectedInterval) or "
                       "came back online.", ("state",))
FEED_RUNS = Counter("urbis_feed_runs_total",
                    "Feed imports by feed and outcome (ok, partial: some records rejected, "
                    "unchanged: source not modified, failed).", ("feed", "outcome"))
FEED_ENTITIES = Counter("urbis_feed_entities_total",
                        "Entities written and records rejected by feed imports.",
                        ("feed", "outcome"))
FEED_DURATION = Histogram("urbis_feed_run_duration_seconds", "Time of one feed import.",
                          ("feed",), buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
FEED_LAST_SUCCESS = Gauge("urbis_feed_last_success_timestamp_seconds",
                          "When each feed last imported without failing (Unix time).",
                          ("feed",), multiprocess_mode="max")

# A scrape-time source of gauge samples: (name, help, [(labels, value), ...]).
GaugeSource = Callable[[], Awaitable[list[tuple[str, str, list[tuple[dict[str, str], float]]]]]]


def render(sources: Iterable[list[tuple[str, str, list[tuple[dict[str, str], float]]]]] = ()
           ) -> tuple[bytes, str]:
    """The exposition text of this process (or of all workers) plus scrape-time gauges."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    for samples in sources:
        for name, doc, values in samples:
            labels = sorted({k for lbl, _ in values for k in lbl})
            gauge = Gauge(name, doc, labels, registry=extra)
            for lbl, value in values:
                (gauge.labels(**lbl) if labels else gauge).set(value)
    return text + generate_latest(extra), CONTENT_TYPE_LATEST


class HttpMetrics:
    """Count and time every HTTP request by method, handler name and status (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            endpoint = scope.get("endpoint")
            handler = getattr(endpoint, "__name__", "none") if endpoint else "none"
            method = scope["method"]
            REQUESTS.labels(method, handler, str(status)).inc()
            LATENCY.labels(method, handler).observe(time.perf_counter() - start)
