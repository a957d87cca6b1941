"""Operations support: readiness of the stores and figures for monitoring."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from urbis.context.actor import DEFAULT_TENANT, Actor
from urbis.security.policy import OPERATIONS, internal, requires
from urbis.storage.registry import Stores

PROBE_ID = "urn:ngsi-ld:urbis:readiness-probe"
STATS_TTL = 10.0  # seconds a computed figure is reused (scrapes come every few seconds)
ReadyReport = dict[str, Any]
GaugeSamples = list[tuple[str, str, list[tuple[dict[str, str], float]]]]


class SupportService:
    """What /ready and /metrics ask of the broker."""

    def __init__(self, stores: Stores, timeout: float = 2.0) -> None:
        self.stores = stores
        self.timeout = timeout
        self._stats: tuple[float, GaugeSamples] | None = None

    @internal  # the readiness probe: open to load balancers, discloses nothing
    async def ready(self) -> tuple[bool, ReadyReport]:
        """(ready, report): each store answers a look-up within the timeout."""
        checks = {
            "entities": self.stores.entities.get(DEFAULT_TENANT, PROBE_ID),
            "contexts": self.stores.contexts.get_context(PROBE_ID),
            "subscriptions": self.stores.subscriptions.get(DEFAULT_TENANT, PROBE_ID),
        }
        report: ReadyReport = {}
        ok = True
        for name, probe in checks.items():
            start = time.perf_counter()
            try:
                await asyncio.wait_for(probe, self.timeout)
            except Exception as exc:  # any failure means "not ready", reported by name
                ok = False
                report[name] = {"status": "down", "error": type(exc).__name__}
                continue
            report[name] = {"status": "up",
                            "latency_ms": round((time.perf_counter() - start) * 1000, 2)}
        return ok, report

    @requires(OPERATIONS)
    async def gauges(self, actor: Actor) -> GaugeSamples:
        """Scrape-time figures from the store (cached for STATS_TTL seconds)."""
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < STATS_TTL:
            return self._stats[1]
        counts = await self.stores.entities.tenant_counts()
        changes, retries = await self.stores.outbox.backlog()
        samples: GaugeSamples = [
            ("urbis_entities", "Entities stored, per tenant.",
             [({"tenant": tenant}, float(n)) for tenant, n in sorted(counts.items())]),
            ("urbis_notifications_queued",
             "Outbox rows waiting: changes to match, notifications to retry.",
             [({"kind": "changes"}, float(changes)), ({"kind": "retries"}, float(retries))])]
        if self.stores.temporal is not None:
            _, pending = await self.stores.temporal.backlog()
            samples.append(("urbis_history_pending",
                            "Entity changes journaled, not yet written into histories.",
                            [({}, float(pending))]))
        self._stats = (now, samples)
        return samples
