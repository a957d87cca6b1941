"""The notifier: delivers subscription notifications from the durable outbox, at least once.

Loops run per process:

- changes: claims the write batches the journal recorded (woken by this process's writes,
  polling for other workers' and for rows whose lease ended), builds their notifications and
  starts sending them at once, each endpoint within its own concurrency limit.
- finish: deletes the change rows whose notifications all ended, queueing the failed ones as
  retries in the same transaction; a row still waiting on a send after the hand-off time is
  finished too, its send handed to a retry row that serves as its lease (`notify_track`).
- retries: sends queued notifications when due, with exponential back-off; after
  `notify_max_attempts` a notification is given up and its subscription shows `failed`.
- periodic: sends the notifications of `timeInterval` subscriptions, each due one claimed by
  one worker.
- tallies: writes the delivery counters, added up in memory, a few times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from urbis.broker.notify_build import Builder, Ready
from urbis.broker.notify_index import SubscriptionIndex
from urbis.broker.notify_send import Outgoing, Sender, Slots, endpoint_key
from urbis.broker.notify_tally import Tallies
from urbis.broker.notify_track import Tracker
from urbis.context.actor import DEFAULT_TENANT
from urbis.context.model import now_iso
from urbis.context.notification import message
from urbis.context.subscription import Subscription
from urbis.security.policy import internal
from urbis.settings import Settings
from urbis.storage.base import OutboxChange, OutboxStore, PendingNotification

log = logging.getLogger(__name__)
HANDOFF = 0.2  # seconds a change batch waits for its sends before handing them to retry rows
MAX_OPEN_ROWS = 4096  # change rows claimed and not finished yet, at most
MAX_RETRY_SENDS = 512  # retries in flight at once
BUSY_DELAY = 1.0  # seconds before a notification deferred by a full queue is tried
PERIODIC_TICK = 0.25
IN_FLIGHT_MARGIN = 2.0  # seconds past its timeout after which a send in flight is retried
# Called with each delivered notification's (created, delivered) epoch seconds (benchmarks).
DeliveryProbe = Callable[[float, float], None]


class Notifier:
    """Delivers notifications for one process; `start` runs its loops, `close` ends them."""

    def __init__(self, settings: Settings, outbox: OutboxStore, index: SubscriptionIndex,
                 builder: Builder, tallies: Tallies) -> None:
        self.settings = settings
        self.outbox = outbox
        self.index = index
        self.builder = builder
        self.tallies = tallies
        self.sender = Sender()
        self.slots = Slots(settings.notify_endpoint_concurrency)
        self._wake = asyncio.Event()
        self._retry_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._flying: set[asyncio.Task[Any]] = set()  # first attempts of change batches
        self.tracker = Tracker(HANDOFF, self._in_flight_lease)
        self._settle_done: list[int] = []
        self._settle_again: list[PendingNotification] = []
        self.probe: DeliveryProbe | None = None

    def wake(self, tenant: str | None = None) -> None:
        """Something was written: look at the outbox now."""
        self._wake.set()

    @internal
    async def start(self) -> None:
        """Start the loops (idempotent)."""
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._loop(name, step), name=f"urbis-notify-{name}")
                       for name, step in (("changes", self._changes_step),
                                          ("retries", self._retries_step),
                                          ("finish", self._finish_step),
                                          ("periodic", self._periodic_step),
                                          ("tallies", self._tallies_step))]

    @internal
    async def close(self) -> None:
        """Stop the loops, let sends in flight finish briefly, flush the counters."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = [*self._sends, *self._flying]
        if pending:
            await asyncio.wait(pending, timeout=2)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await self._finish_now()
        with contextlib.suppress(Exception):
            await self.tallies.flush()
        await self.sender.close()

    async def _loop(self, name: str, step: Callable[[], Awaitable[bool]]) -> None:
        """Run `step` again and again; it returns True when it should run again at once."""
        delay = self.settings.notify_poll_interval
        while True:
            try:
                again = await step()
                delay = self.settings.notify_poll_interval
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away: keep trying, more slowly
                log.exception("notifier %s loop failed; trying again in %.1f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if not again:
                await asyncio.sleep(0)

    # --- changes --------------------------------------------------------------------------

    async def _changes_step(self) -> bool:
        """Claim changes and start their sends at once (the finish step writes the outcome)."""
        if len(self.tracker) >= MAX_OPEN_ROWS:
            await asyncio.sleep(0.01)
            return True
        self._wake.clear()
        await self.index.refresh()
        rows = await self.outbox.claim_changes(self.settings.notify_batch,
                                               self.settings.notify_lease)
        if not rows:
            await _wait(self._wake, self.settings.notify_poll_interval)
            return False
        now = now_iso()
        for batch in _by_tenant(rows):  # a tenant's consecutive rows: notified together
            ready = await self.builder.from_changes(batch, now)
            self.tracker.add([row.seq for row in batch], [(r, self._start(r)) for r in ready])
        return True

    def _start(self, ready: Ready) -> asyncio.Task[PendingNotification | None]:
        task = asyncio.create_task(self._attempt(ready.tenant, ready, 0))
        self._flying.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._flying.discard)
        return task

    async def _finish_step(self) -> bool:
        """Delete finished change rows (queueing their retries), and settle handed-off sends."""
        await _wait(self.tracker.wake, min(self.tracker.due_in() or 0.5, 0.5))
        self.tracker.wake.clear()
        await asyncio.sleep(0.005)  # let a few more end: one write for them all
        await self._finish_now()
        return False

    async def _finish_now(self) -> None:
        finish = self.tracker.take()
        if finish.seqs or finish.retries or finish.handed:
            added = await self.outbox.finish_changes(
                finish.seqs, finish.retries + [p for p, _ in finish.handed])
            for (_, task), seq in zip(finish.handed, added[len(finish.retries):], strict=True):
                task.add_done_callback(functools.partial(self._settled, seq=seq))
            if finish.retries:
                self._retry_wake.set()
        done, again = self._settle_done, self._settle_again
        if done or again:
            self._settle_done, self._settle_again = [], []
            try:
                await self.outbox.finish_retries(done, again)
            except BaseException:
                self._settle_done.extend(done)
                self._settle_again.extend(again)
                raise
            if again:
                self._retry_wake.set()

    def _settled(self, task: asyncio.Task[PendingNotification | None], seq: int) -> None:
        """A send handed off to its retry row ended: the row goes, or is rescheduled."""
        if task.cancelled() or task.exception():
            return  # the row stays; it is retried when its lease ends
        result = task.result()
        if result is None:
            self._settle_done.append(seq)
        else:
            result.seq = seq
            self._settle_again.append(result)
        self.tracker.wake.set()

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, tenant: str, ready: Ready, attempts: int
                       ) -> PendingNotification | None:
        """Send once; None when delivered or given up, else the retry to queue."""
        sub = ready.sub
        endpoint = sub.notification.endpoint
        key = endpoint_key(endpoint.uri)
        if self.slots.full(key):  # too many waiting for the endpoint: wait in the outbox
            return PendingNotification(tenant, sub.id, ready.body, attempts,
                                       time.time() + BUSY_DELAY)
        async with self.slots.slot(key):
            at = now_iso()
            try:
                headers, body = message(sub, {**ready.body, "notifiedAt": at},
                                        None if tenant == DEFAULT_TENANT else tenant)
                info = tuple((p["key"], p["value"]) for p in endpoint.notifier_info or ())
                error = await self.sender.send(Outgoing(endpoint.uri, headers, body,
                                                        self._timeout(sub), info))
            except Exception as exc:  # a bug must not stop the other notifications
                log.exception("notification of subscription %s failed", sub.id)
                error = f"{type(exc).__name__}: {exc}"
        attempts += 1
        final = error is not None and attempts >= self.settings.notify_max_attempts
        self.tallies.add(tenant, sub.id, error is None, at, final)
        if error is None:
            if self.probe is not None:
                self.probe(ready.created, time.time())
            return None
        if final:
            log.warning("subscription %s: notification %s given up after %d attempts: %s",
                        sub.id, ready.body.get("id"), attempts, error)
            return None
        log.info("subscription %s: notification failed (attempt %d): %s", sub.id, attempts,
                 error)
        return PendingNotification(tenant, sub.id, ready.body, attempts,
                                   time.time() + self._backoff(attempts), error)

    def _timeout(self, sub: Subscription) -> float:
        timeout = sub.notification.endpoint.timeout
        return timeout / 1000 if timeout else self.settings.notify_timeout

    def _in_flight_lease(self, ready: Ready) -> float:
        """Seconds a send handed off may still take: its queue's turns, then its timeout."""
        sub = ready.sub
        waiting = self.slots.load(endpoint_key(sub.notification.endpoint.uri))
        turns = 1 + waiting / self.slots.concurrency
        return turns * self._timeout(sub) + IN_FLIGHT_MARGIN

    def _backoff(self, attempts: int) -> float:
        first, most = self.settings.notify_retry_first, self.settings.notify_retry_max
        return float(min(most, first * 2 ** (attempts - 1)))

    # --- retries --------------------------------------------------------------------------

    async def _retries_step(self) -> bool:
        room = MAX_RETRY_SENDS - len(self._sends)
        if room <= 0:
            await asyncio.wait(self._sends, return_when=asyncio.FIRST_COMPLETED)
            return True
        self._retry_wake.clear()
        await self.index.refresh()
        rows = await self.outbox.claim_retries(min(room, self.settings.notify_batch),
                                               self.settings.notify_lease)
        done: list[int] = []
        busy: list[PendingNotification] = []
        for row in rows:
            sub = self.index.get(row.tenant, row.subscription_id)
            if sub is None or sub.expired(now_iso()):  # deleted, paused or expired: dropped
                done.append(row.seq)
            elif self.slots.full(endpoint_key(sub.notification.endpoint.uri)):
                row.next_at = time.time() + BUSY_DELAY
                busy.append(row)
            else:
                ready = Ready(row.tenant, sub, row.body, time.time())
                self._spawn(self._sends, self._retry(ready, row))
        await self.outbox.finish_retries(done, busy)
        if len(rows) >= self.settings.notify_batch and len(busy) < len(rows):
            return True
        await _wait(self._retry_wake, self.settings.notify_poll_interval)
        return False

    async def _retry(self, ready: Ready, row: PendingNotification) -> None:
        again = await self._attempt(row.tenant, ready, row.attempts)
        if again is None:
            await self.outbox.finish_retries([row.seq], [])
        else:
            again.seq = row.seq
            await self.outbox.finish_retries([], [again])

    # --- periodic subscriptions, counters -------------------------------------------------

    async def _periodic_step(self) -> bool:
        await asyncio.sleep(PERIODIC_TICK)
        for tenant, sub in await self.outbox.claim_periodic(time.time(), 100):
            ready = await self.builder.periodic(tenant, sub, now_iso())
            if ready is not None:
                self._spawn(self._sends, self._send_periodic(ready))
        return False

    async def _send_periodic(self, ready: Ready) -> None:
        again = await self._attempt(ready.tenant, ready, 0)
        if again is not None:
            await self.outbox.finish_changes([], [again])
            self._retry_wake.set()

    async def _tallies_step(self) -> bool:
        await asyncio.sleep(0.2)
        await self.tallies.flush()
        return False

    def _spawn(self, tasks: set[asyncio.Task[None]], coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(_finished(tasks))


def _finished(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("notifier task failed", exc_info=task.exception())

    return done


def _by_tenant(rows: list[OutboxChange]) -> list[list[OutboxChange]]:
    """Consecutive rows of one tenant together, in order."""
    out: list[list[OutboxChange]] = []
    for row in rows:
        if out and out[-1][0].tenant == row.tenant:
            out[-1].append(row)
        else:
            out.append([row])
    return out


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
