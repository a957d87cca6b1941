"""Outbox change rows this process has claimed, until each can be finished.

A row's notifications are sent as soon as it is claimed. The row can be finished (deleted,
with the retries it leaves queued in the same transaction) once every send has ended; a row
still waiting on a send after the hand-off time is finished anyway, each unfinished send
getting a retry row whose `next_at` serves as its lease: a slow endpoint never keeps rows, and
so the other endpoints' notifications, waiting. Completion is event-driven: a send that ends
counts down its row; only the oldest rows are looked at for the hand-off.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from urbis.broker.notify_build import Ready
from urbis.storage.base import PendingNotification

Send = tuple[Ready, "asyncio.Task[PendingNotification | None]"]
IN_FLIGHT = "in flight"


@dataclass(slots=True)
class _Row:
    seqs: list[int]  # change rows notified together: finished together
    claimed: float  # monotonic seconds
    sends: list[Send]
    pending: int


@dataclass(slots=True)
class Finish:
    """What to write: change rows to delete, retries to queue, sends handed off to retry rows."""

    seqs: list[int]
    retries: list[PendingNotification]
    handed: list[tuple[PendingNotification, asyncio.Task[PendingNotification | None]]]


class Tracker:
    """Claimed change rows and the sends of each."""

    def __init__(self, handoff: float, lease: Callable[[Ready], float]) -> None:
        self.handoff = handoff
        self.lease = lease  # seconds a send handed off may still take
        self.rows: dict[int, _Row] = {}  # in claim order
        self._complete: list[int] = []
        self.wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, seqs: list[int], sends: list[Send]) -> None:
        """Claimed rows and the sends started for them (together)."""
        row = _Row(seqs, time.monotonic(), sends, len(sends))
        self.rows[seqs[0]] = row
        if not sends:
            self._complete.append(seqs[0])
            self.wake.set()
        for _, task in sends:
            task.add_done_callback(functools.partial(self._ended, row))

    def _ended(self, row: _Row, _task: asyncio.Task[PendingNotification | None]) -> None:
        row.pending -= 1
        if row.pending == 0:
            self._complete.append(row.seqs[0])
            self.wake.set()

    def due_in(self) -> float | None:
        """Seconds until the oldest row reaches the hand-off time (None: no row)."""
        for row in self.rows.values():
            return max(0.0, row.claimed + self.handoff - time.monotonic())
        return None

    def take(self) -> Finish:
        """The rows that can be finished now, and what finishing them writes."""
        out = Finish([], [], [])
        complete, self._complete = self._complete, []
        for seq in complete:
            row = self.rows.pop(seq, None)
            if row is not None:
                self._collect(row, out)
        now = time.monotonic()
        while self.rows:
            row = next(iter(self.rows.values()))
            if now - row.claimed < self.handoff:
                break
            del self.rows[row.seqs[0]]
            self._collect(row, out)
        return out

    def _collect(self, row: _Row, out: Finish) -> None:
        out.seqs.extend(row.seqs)
        for ready, task in row.sends:
            if not task.done():
                pending = PendingNotification(ready.tenant, ready.sub.id, ready.body, 0,
                                              time.time() + self.lease(ready), IN_FLIGHT)
                out.handed.append((pending, task))
            elif task.cancelled() or task.exception() is not None:
                out.retries.append(PendingNotification(ready.tenant, ready.sub.id, ready.body,
                                                       0, time.time()))
            elif (result := task.result()) is not None:
                out.retries.append(result)
