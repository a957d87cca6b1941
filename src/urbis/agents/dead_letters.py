"""The dead-letter log: measures the agents did not write, why, and a bounded excerpt of each.

Rejections are counted at once in the Prometheus counter `urbis_agent_measures_total` (labels
`agent`: the transport, `outcome`: the reason) and queued here; a background flush writes them
to the store in one transaction a second, which keeps only the newest `keep` (every worker
shares the log). A flood of bad messages costs one write a second: past `max_pending` queued
letters, more are only counted (`dropped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from urbis.context.actor import ADMIN, Actor
from urbis.context.devices import MAX_DEAD_LETTER_PAYLOAD, DeadLetter
from urbis.context.model import now_iso
from urbis.observability.metrics import AGENT_MEASURES
from urbis.security.policy import DEVICES_READ, internal, requires
from urbis.storage.devices_base import DeadLetterQuery, DeviceStore

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 1.0
MAX_LIMIT = 1000


def excerpt(payload: bytes | str | None) -> str:
    """The first characters of a payload as text (undecodable bytes replaced)."""
    if payload is None:
        return ""
    head = payload[:MAX_DEAD_LETTER_PAYLOAD * 4]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return text[:MAX_DEAD_LETTER_PAYLOAD]


class DeadLetters:
    """Counts rejections and keeps them in the store's bounded dead-letter log."""

    def __init__(self, store: DeviceStore, keep: int = 10_000, max_pending: int = 1000) -> None:
        self.store = store
        self.keep = keep
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[DeadLetter] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, tenant: str | None, apikey: str, device_id: str, transport: str,
               reason: str, detail: str, payload: bytes | str | None = None) -> None:
        """Count a rejected message and queue its dead letter."""
        AGENT_MEASURES.labels(transport, reason).inc()
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append(DeadLetter(now_iso(), tenant, apikey[:256], device_id[:256],
                                        transport, reason, detail[:1000], excerpt(payload)))

    @internal
    async def flush(self) -> None:
        """Write the queued dead letters (one transaction)."""
        async with self._lock:
            letters, self._pending = self._pending, []
            if letters:
                await self.store.add_dead_letters(letters, self.keep)

    def start(self) -> None:
        """Flush every FLUSH_INTERVAL seconds in the background."""
        self._task = asyncio.create_task(self._loop(), name="urbis-iot-dead-letters")

    @internal
    async def close(self) -> None:
        """Stop flushing, after a last flush."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:  # the store is down: the letters are lost, the agent goes on
                log.warning("iot agent: could not write dead letters", exc_info=True)

    @requires(DEVICES_READ)
    async def entries(self, actor: Actor, device_id: str | None = None, reason: str | None = None,
                   limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters of the caller's tenant (a platform admin also sees those
        of unknown apikeys, which have no tenant)."""
        await self.flush()
        tenants: list[str | None] = [actor.tenant]
        if actor.tenants is None and ADMIN in actor.roles:
            tenants.append(None)
        query = DeadLetterQuery(tenants, device_id, reason, max(1, min(limit, MAX_LIMIT)))
        return await self.store.dead_letters(query)

    @requires(DEVICES_READ)
    async def summary(self, actor: Actor) -> list[dict[str, object]]:
        """Counts by device and reason over the retained dead letters of the caller's tenant."""
        letters = await self.entries(actor, limit=MAX_LIMIT)
        counts = Counter((x.tenant, x.apikey, x.device_id, x.reason) for x in letters)
        return [{"service": t, "apikey": k, "device_id": d, "reason": r, "count": n}
                for (t, k, d, r), n in counts.most_common()]
