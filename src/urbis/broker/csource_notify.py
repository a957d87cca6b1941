"""Notifications of subscriptions to registrations (clause 5.11.7), at least once.

Every registration write records its change (before / after) in the store, in the write's
transaction. This loop claims changes under a lease (woken by this process's writes and by
other workers' announcements, else polling), reads the active subscriptions to registrations
from their store (so one just created by another worker is never missed), and for each one of
the tenant that the change concerns sends a Notification whose `data` is the registration and
whose
`triggerReason` is newlyMatching, updated or noLongerMatching (`registration_match`). A failed
send is tried again with back-off (the notify_retry settings) while the change stays leased;
the change is deleted once every send has ended. A worker that dies leaves its changes to be
claimed again when their lease ends: a notification may come twice, never not at all.

Registrations are few and change seldom: sends are not queued per endpoint as entity
notifications are. The counters (timesSent, lastSuccess, status ...) are the subscriptions'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from urbis.broker.contexts import ContextService
from urbis.broker.notify_build import new_notification_id
from urbis.broker.notify_send import Outgoing, Sender
from urbis.broker.notify_tally import Tallies
from urbis.context.actor import DEFAULT_TENANT
from urbis.context.errors import NgsiError
from urbis.context.jsonld import TermMap, core_term_map
from urbis.context.model import now_iso
from urbis.context.notification import context_url, message, notification_body
from urbis.context.query.q import parse_q
from urbis.context.registration import Registration, render
from urbis.context.registration_match import (
    NEWLY_MATCHING,
    RegistrationFilter,
    change_reason,
    subscription_filter,
)
from urbis.context.subscription import Subscription
from urbis.security.policy import internal
from urbis.settings import Settings
from urbis.storage.base import TOPIC_ALL, SubscriptionStore
from urbis.storage.registrations_base import (
    TOPIC_REGISTRATIONS,
    RegistrationChange,
    RegistrationQuery,
    RegistrationStore,
)

log = logging.getLogger(__name__)
POLL = 5.0  # seconds between looks for changes nobody woke us for (a dead worker's)
BATCH = 64
MAX_INITIAL = 1000  # registrations sent in the notification of a new subscription


class CSourceNotifier:
    """Sends the notifications of subscriptions to registrations for one process."""

    def __init__(self, settings: Settings, registrations: RegistrationStore,
                 subscriptions: SubscriptionStore, contexts: ContextService,
                 tallies: Tallies) -> None:
        self.settings = settings
        self.registrations = registrations
        self.subscriptions = subscriptions
        self.contexts = contexts
        self.tallies = tallies
        self.sender = Sender()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()
        self._filters: dict[tuple[str, str, str], RegistrationFilter] = {}

    def wake(self) -> None:
        """A registration was written here: look for changes now."""
        self._wake.set()

    def on_invalidation(self, topic: str, key: str | None) -> None:
        """Another worker wrote a registration (InvalidationChannel listener)."""
        if topic in (TOPIC_REGISTRATIONS, TOPIC_ALL):
            self._wake.set()

    @internal
    async def start(self) -> None:
        """Start the loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="urbis-csource-notify")

    @internal
    async def close(self) -> None:
        """Stop the loop; sends in flight get a moment to end, then the counters are written."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._work:
            await asyncio.wait(self._work, timeout=2)
            for work in list(self._work):
                work.cancel()
        with contextlib.suppress(Exception):
            await self.tallies.flush()
        await self.sender.close()

    def initial(self, tenant: str, subscription_id: str) -> None:
        """Send a new subscription the registrations it matches now (in the background)."""
        self._spawn(self._initial(tenant, subscription_id))

    async def _loop(self) -> None:
        delay = self.settings.notify_poll_interval
        while True:
            try:
                await self._step()
                delay = self.settings.notify_poll_interval
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: keep trying, more slowly
                log.exception("csource notifier failed; trying again in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _step(self) -> None:
        self._wake.clear()
        rows = await self.registrations.claim_changes(BATCH, self._lease())
        if not rows:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)
            return
        active: dict[str, list[Subscription]] = {}
        for tenant, sub in await self.subscriptions.active(now_iso()):
            active.setdefault(tenant, []).append(sub)
        for row in rows:
            self._spawn(self._handle(row, active.get(row.tenant, [])))

    async def _handle(self, row: RegistrationChange, subs: list[Subscription]) -> None:
        now, written = now_iso(), _iso(row.created)
        sends = []
        for sub in subs:
            if sub.created_at > written:  # its initial notification covers the change
                continue
            found = change_reason(await self._filter(sub), row.before, row.after, now)
            if found is not None:
                sends.append(self._deliver(row.tenant, sub, found[0], [found[1]]))
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):  # a bug must not keep the change forever
                log.error("csource notification failed", exc_info=outcome)
        await self.registrations.finish_changes([row.seq])
        await self.tallies.flush()

    async def _initial(self, tenant: str, subscription_id: str) -> None:
        sub = await self.subscriptions.get(tenant, subscription_id)
        if sub is None or not sub.active or sub.expired(now_iso()):
            return
        flt = await self._filter(sub)
        page = await self.registrations.query(tenant, RegistrationQuery(
            test=lambda reg: not reg.expired(now_iso()) and flt.matches(reg),
            limit=MAX_INITIAL))
        if page.registrations:
            await self._deliver(tenant, sub, NEWLY_MATCHING, page.registrations)
            await self.tallies.flush()

    async def _deliver(self, tenant: str, sub: Subscription, reason: str,
                       regs: list[Registration]) -> None:
        """Send one notification, trying again with back-off until delivered or given up."""
        tm = await self._term_map(sub)
        data = [render(r, tm, sys_attrs=bool(sub.notification.sys_attrs)) for r in regs]
        body = notification_body(sub, data, now_iso(), new_notification_id(), reason)
        endpoint = sub.notification.endpoint
        timeout = endpoint.timeout / 1000 if endpoint.timeout else self.settings.notify_timeout
        info = tuple((p["key"], p["value"]) for p in endpoint.notifier_info or ())
        most = self.settings.notify_max_attempts
        for attempt in range(1, most + 1):
            at = now_iso()
            headers, payload = message(sub, {**body, "notifiedAt": at},
                                       None if tenant == DEFAULT_TENANT else tenant)
            error = await self.sender.send(Outgoing(endpoint.uri, headers, payload, timeout,
                                                    info))
            self.tallies.add(tenant, sub.id, error is None, at, attempt == most)
            if error is None:
                return
            log.info("csource subscription %s: notification failed (attempt %d): %s",
                     sub.id, attempt, error)
            if attempt < most:
                await asyncio.sleep(self._backoff(attempt))

    async def _filter(self, sub: Subscription) -> RegistrationFilter:
        """The subscription's filter, its csf parsed with its @context (cached)."""
        key = (sub.id, sub.created_at, sub.modified_at)
        cached = self._filters.get(key)
        if cached is not None:
            return cached
        csf = None
        if sub.csf is not None:
            tm = await self._term_map(sub)
            try:
                csf = parse_q(sub.csf, tm.expand)
            except NgsiError:
                log.warning("csource subscription %s: csf %r no longer parses", sub.id, sub.csf)
        flt = subscription_filter(sub, csf)
        if len(self._filters) > 10_000:
            self._filters.clear()
        self._filters[key] = flt
        return flt

    async def _term_map(self, sub: Subscription) -> TermMap:
        try:
            return await self.contexts.term_map(context_url(sub))
        except NgsiError as exc:
            log.warning("csource subscription %s: @context %s unavailable (%s); using the core "
                        "context", sub.id, context_url(sub), exc)
            return core_term_map()

    def _backoff(self, attempts: int) -> float:
        first, most = self.settings.notify_retry_first, self.settings.notify_retry_max
        return float(min(most, first * 2 ** (attempts - 1)))

    def _lease(self) -> float:
        """Long enough for every attempt of a change's notifications, and their waits."""
        attempts = self.settings.notify_max_attempts
        waits = sum(self._backoff(n) for n in range(1, attempts))
        return max(self.settings.notify_lease,
                   waits + attempts * self.settings.notify_timeout + 10.0)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._work.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._work.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("csource notification task failed", exc_info=task.exception())


def _iso(epoch: float) -> str:
    """Epoch seconds as an NGSI-LD DateTime, in the form `now_iso` gives."""
    whole = int(epoch)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            + f".{int((epoch - whole) * 1_000_000):06d}Z")
