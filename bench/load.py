"""The initial load: every entity sent by batch upsert over a few keep-alive connections, timed.

Bodies are serialised before the clock starts, so the figure is the server's (plus loopback).
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.server import HOST

UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class LoadError(RuntimeError):
    """A batch was not accepted in full."""


@dataclass
class _Worker:
    port: int
    timeout: float
    conn: http.client.HTTPConnection | None = None
    latencies: list[float] = field(default_factory=list)

    def send(self, body: bytes) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        start = time.perf_counter()
        self.conn.request("POST", UPSERT_PATH, body=body, headers=HEADERS)
        response = self.conn.getresponse()
        payload = response.read()
        self.latencies.append(time.perf_counter() - start)
        if response.status not in (201, 204):
            raise LoadError(f"upsert answered {response.status}: {payload[:500]!r}")


def load(port: int, bodies: list[bytes], entity_count: int, connections: int = 4,
         timeout: float = 120.0) -> dict[str, Any]:
    """Send every body; return entities/s, requests/s and batch latencies (ms)."""
    local = threading.local()
    workers: list[_Worker] = []
    lock = threading.Lock()

    def send(body: bytes) -> None:
        worker = getattr(local, "worker", None)
        if worker is None:
            worker = local.worker = _Worker(port, timeout)
            with lock:
                workers.append(worker)
        worker.send(body)

    start = time.perf_counter()
    with ThreadPoolExecutor(connections, thread_name_prefix="bench-load") as pool:
        for _ in pool.map(send, bodies):
            pass
    elapsed = time.perf_counter() - start
    for worker in workers:
        if worker.conn is not None:
            worker.conn.close()
    latencies = sorted(x * 1000 for w in workers for x in w.latencies)
    return {
        "entities": entity_count,
        "requests": len(bodies),
        "batch_size": -(-entity_count // max(1, len(bodies))),
        "connections": connections,
        "seconds": round(elapsed, 3),
        "entities_per_s": round(entity_count / elapsed, 1),
        "requests_per_s": round(len(bodies) / elapsed, 1),
        "latency_ms": _percentiles(latencies),
    }


def _percentiles(sorted_ms: list[float]) -> dict[str, float]:
    if not sorted_ms:
        return {}

    def pick(p: float) -> float:
        return round(sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))], 3)

    return {"p50": pick(50), "p90": pick(90), "p95": pick(95), "p99": pick(99),
            "max": round(sorted_ms[-1], 3), "mean": round(statistics.fmean(sorted_ms), 3)}
