"""The health of context sources: outcome counters (written in batches) and cooldowns.

Each request to a source is counted in memory (timesSent, timesFailed, lastSuccess,
lastFailure, status) and the counters are written to the RegistrationStore once a second
(`record_outcomes`, one statement per flush, never one per request). A source that failed
(unreachable, timed out, 5xx, unusable answer) is not asked again for its cooldown: its
registration's `management.cooldown` (ms), else the broker's setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from urbis.context.model import now_iso
from urbis.context.registration import Registration
from urbis.storage.registrations_base import SourceTally

log = logging.getLogger(__name__)
Recorder = Callable[[Sequence[SourceTally]], Awaitable[None]]
OK, FAILED = "ok", "failed"


class SourceHealth:
    """Counters and cooldowns of the sources this process has asked."""

    def __init__(self, record: Recorder | None, cooldown: float, interval: float = 1.0) -> None:
        self.record = record
        self.cooldown = cooldown  # seconds, when a registration names none
        self.interval = interval
        self._open: dict[tuple[str, str], SourceTally] = {}
        self._failed_at: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    def cooling(self, tenant: str, reg: Registration) -> bool:
        """Whether the source failed less than its cooldown ago (so it is not asked now)."""
        failed = self._failed_at.get((tenant, reg.id))
        if failed is None:
            return False
        management = reg.management
        cooldown = (management.cooldown / 1000 if management is not None and
                    management.cooldown is not None else self.cooldown)
        if time.monotonic() - failed < cooldown:
            return True
        del self._failed_at[(tenant, reg.id)]
        return False

    def add(self, tenant: str, reg_id: str, ok: bool, cools: bool = False) -> None:
        """Count one request; `cools`: a failure that starts the cooldown."""
        key = (tenant, reg_id)
        tally = self._open.get(key)
        if tally is None:
            tally = self._open[key] = SourceTally(tenant, reg_id)
        at = now_iso()
        tally.sent += 1
        if ok:
            tally.last_success, tally.status = at, OK
            self._failed_at.pop(key, None)
        else:
            tally.failed += 1
            tally.last_failure, tally.status = at, FAILED
            if cools:
                self._failed_at[key] = time.monotonic()
        self._start()

    def _start(self) -> None:
        if self._task is None and self.record is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at close
                self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # counters are kept for the next flush
                log.warning("could not record context source outcomes", exc_info=True)

    async def flush(self) -> None:
        """Write the counters gathered since the last flush (kept if the write fails)."""
        if not self._open or self.record is None:
            return
        tallies, self._open = list(self._open.values()), {}
        try:
            await self.record(tallies)
        except Exception:
            for old in tallies:
                self._keep(old)
            raise

    def _keep(self, old: SourceTally) -> None:
        key = (old.tenant, old.registration_id)
        new = self._open.get(key)
        if new is None:
            self._open[key] = old
            return
        new.sent += old.sent
        new.failed += old.failed
        for name in ("last_success", "last_failure", "status"):
            if getattr(new, name) is None:
                setattr(new, name, getattr(old, name))

    async def close(self) -> None:
        """Stop the flush loop and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
