"""Coalescing write queue: many device messages, one store transaction.

Messages wait in one lane per tenant. A lane writes when `batch_size` updates are waiting, or
`delay` seconds after the first one arrived, and while it writes the next batch fills up, so
under load a transaction carries many messages and at rest a message waits `delay` at most.
One batch per lane is in flight at a time: the updates of an entity are written in the order
they came. A message is one item: its updates are written in the same transaction, or none of
them is. `put` resolves the item's future once its batch is durable (or failed); at most
`queue_size` updates wait in all, beyond which `put` waits (`offer` refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Item:
    """One message's updates, for one tenant; `future` is set when it is written."""

    tenant: str
    updates: list[Any]
    future: asyncio.Future[None] | None = None
    meta: Any = None  # what the writer needs to report on it (device, transport...)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = max(1, len(self.updates))


Writer = Callable[[str, list[Item]], Awaitable[None]]


class Full(Exception):
    """The queue is full."""


class _Lane:
    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        self.size = 0
        self.wake = asyncio.Event()
        self.full = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Coalescer:
    """Batches items per tenant and hands each batch to `write(tenant, items)`."""

    def __init__(self, write: Writer, *, batch_size: int = 1000, delay: float = 0.005,
                 queue_size: int = 50_000) -> None:
        self.write = write
        self.batch_size = batch_size
        self.delay = delay
        self.queue_size = queue_size
        self.pending = 0  # updates queued or being written
        self._lanes: dict[str, _Lane] = {}
        self._room = asyncio.Condition()
        self._closing = False

    def offer(self, item: Item) -> None:
        """Queue without waiting; Full if there is no room."""
        if self._closing:
            raise Full("the agent is stopping")
        if self.pending + item.size > self.queue_size and self.pending:
            raise Full(f"{self.pending} measures are waiting to be written")
        self._enqueue(item)

    async def put(self, item: Item, timeout: float = 5.0) -> None:
        """Queue, waiting up to `timeout` seconds for room; Full after that."""
        if self.pending + item.size > self.queue_size and self.pending:
            async with self._room:
                try:
                    await asyncio.wait_for(self._room.wait_for(
                        lambda: self.pending + item.size <= self.queue_size or not self.pending),
                        timeout)
                except TimeoutError:
                    raise Full(f"{self.pending} measures are waiting to be written") from None
        self.offer(item)

    def _enqueue(self, item: Item) -> None:
        lane = self._lanes.get(item.tenant)
        if lane is None:
            lane = self._lanes[item.tenant] = _Lane()
            lane.task = asyncio.create_task(self._run(lane, item.tenant),
                                            name=f"urbis-iot-writer-{item.tenant or 'default'}")
        lane.items.append(item)
        lane.size += item.size
        self.pending += item.size
        lane.wake.set()
        if lane.size >= self.batch_size:
            lane.full.set()

    async def _run(self, lane: _Lane, tenant: str) -> None:
        while True:
            if not lane.items:
                if self._closing:
                    return
                lane.wake.clear()
                await lane.wake.wait()
                continue
            if lane.size < self.batch_size and self.delay > 0 and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.full.wait(), self.delay)
            batch = self._take(lane)
            try:
                await self.write(tenant, batch)
            except Exception as exc:  # the writer reports per item; this is a last resort
                log.exception("iot agent: writing a batch of %d messages failed", len(batch))
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)
            finally:
                await self._release(sum(i.size for i in batch))

    def _take(self, lane: _Lane) -> list[Item]:
        batch: list[Item] = []
        size = 0
        while lane.items and (not batch or size + lane.items[0].size <= self.batch_size):
            item = lane.items.popleft()
            batch.append(item)
            size += item.size
        lane.size -= size
        if lane.size < self.batch_size:
            lane.full.clear()
        return batch

    async def _release(self, size: int) -> None:
        self.pending -= size
        async with self._room:
            self._room.notify_all()

    async def close(self) -> None:
        """Write everything queued, then stop the lanes."""
        self._closing = True
        for lane in list(self._lanes.values()):
            lane.wake.set()
            lane.full.set()
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()
