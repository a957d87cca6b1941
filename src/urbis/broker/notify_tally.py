"""Delivery counters of subscriptions, added up in memory and written in one statement."""

from __future__ import annotations

import logging

from urbis.context.subscription import FAILED, OK
from urbis.observability.metrics import NOTIFICATIONS
from urbis.storage.base import DeliveryTally, SubscriptionStore

log = logging.getLogger(__name__)


class Tallies:
    """timesSent, timesFailed, lastNotification ... of each subscription since the last flush."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store
        self._open: dict[tuple[str, str], DeliveryTally] = {}

    def add(self, tenant: str, subscription_id: str, ok: bool, at: str, final: bool) -> None:
        """Count one attempt; `final`: a failure after which the notification is given up."""
        key = (tenant, subscription_id)
        tally = self._open.get(key)
        if tally is None:
            tally = self._open[key] = DeliveryTally(tenant, subscription_id)
        tally.sent += 1
        tally.last_notification = at
        NOTIFICATIONS.labels("sent" if ok else "failed" if final else "retried").inc()
        if ok:
            tally.last_success, tally.last_status = at, OK
        else:
            tally.failed += 1
            tally.last_failure = at
            if final:
                tally.last_status = FAILED

    async def flush(self) -> None:
        """Write what was counted since the last flush (kept for the next one if it fails)."""
        if not self._open:
            return
        tallies, self._open = list(self._open.values()), {}
        try:
            await self.store.record_notifications(tallies)
        except Exception:
            for tally in tallies:
                self._merge(tally)
            raise

    def _merge(self, old: DeliveryTally) -> None:
        key = (old.tenant, old.subscription_id)
        new = self._open.get(key)
        if new is None:
            self._open[key] = old
            return
        new.sent += old.sent
        new.failed += old.failed
        for name in ("last_notification", "last_success", "last_failure", "last_status"):
            if getattr(new, name) is None:
                setattr(new, name, getattr(old, name))
