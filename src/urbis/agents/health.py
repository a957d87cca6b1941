"""Device health: a device silent past its `expectedInterval` goes offline, and back online.

A device (or its service group) may give `expectedInterval`: the seconds between two messages
of a healthy device. Every `iota_health_interval` seconds the checker looks at the devices this
process has written measures of (the ingestion pipeline's last-seen times): one whose last
message is older than its expected interval is confirmed against the registry's `last_seen`
(other workers record theirs there), then marked `offline`: its entity's `deviceState`
Property becomes "offline", a warning is logged (`device offline`) and
`urbis_device_state_changes_total{state="offline"}` counts it. Its next written message sets
`deviceState` back to "online" (and counts `state="online"`). Devices not heard from since the
process started are not judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from urbis.agents.device_write import write_values
from urbis.agents.ingest import IngestService
from urbis.agents.measure_plan import Plan
from urbis.context.jsonld import TermMap
from urbis.observability.metrics import DEVICE_STATE
from urbis.security.policy import internal

log = logging.getLogger(__name__)
STATE = "deviceState"
ONLINE, OFFLINE = "online", "offline"
Key = tuple[str, str]  # (tenant, device_id)


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def expected_interval(plan: Plan) -> float | None:
    """The device's (else its group's) expectedInterval in seconds, if any."""
    value = plan.device.body.get("expectedInterval")
    if value is None and plan.group is not None:
        value = plan.group.body.get("expectedInterval")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


class HealthChecker:
    """Marks silent devices offline and returning ones online."""

    def __init__(self, ingest: IngestService, tm: TermMap, interval: float = 30.0) -> None:
        self.ingest = ingest
        self.tm = tm
        self.interval = interval
        self.offline: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        ingest.on_seen = self.seen

    def start(self) -> None:
        """Check every `interval` seconds in the background (0: never)."""
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="urbis-iot-health")

    @internal
    async def close(self) -> None:
        """Stop checking; let state writes in flight finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=5)

    def seen(self, key: Key, plan: Plan) -> None:
        """A message of the device was written: an offline device is online again."""
        if key in self.offline:
            self.offline.discard(key)
            task = asyncio.ensure_future(self._mark(plan, ONLINE))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    @internal
    async def check(self, now: float | None = None) -> list[Key]:
        """Mark the devices silent past their expected interval offline; returns them."""
        now = now if now is not None else datetime.now(UTC).timestamp()
        gone: list[Key] = []
        for key, plan in list(self.ingest.seen_plans.items()):
            limit = expected_interval(plan)
            if limit is None or key in self.offline:
                continue
            if now - _epoch(self.ingest.last_seen(*key)) <= limit:
                continue
            stored = await self.ingest.cache.store.get_device(*key)
            if stored is not None and now - _epoch(stored.last_seen) <= limit:
                continue  # another worker heard from it
            self.offline.add(key)
            gone.append(key)
            await self._mark(plan, OFFLINE)
        return gone

    async def _mark(self, plan: Plan, state: str) -> None:
        DEVICE_STATE.labels(state).inc()
        level = logging.WARNING if state == OFFLINE else logging.INFO
        log.log(level, "device %s", state, extra={"tenant": plan.tenant,
                                                  "device_id": plan.device.device_id,
                                                  "entity_id": plan.entity_id})
        await write_values(self.ingest.entities, self.tm, plan.device, {STATE: state},
                           "HealthChecker.mark")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the store is down: next time
                log.warning("iot agent: device health check failed", exc_info=True)
