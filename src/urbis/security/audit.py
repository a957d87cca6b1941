"""The audit service: record decisions, seal the chain, query, export and verify the log.

Changes are recorded by the storage journal (one record per write batch, in its
transaction); this service records the rest (refusals, reads of sensitive attributes), runs
the sealer that chains new records every `seal_interval` seconds and purges records older
than the retention, and lets admins read and check the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace

from urbis.context.actor import Actor, Call
from urbis.context.audit import (
    ALLOW,
    AuditFilter,
    AuditRecord,
    ChainState,
    at_text,
    call_record,
    chain_hash,
)
from urbis.context.errors import Forbidden, NgsiError
from urbis.context.model import now_iso
from urbis.context.temporal import parse_duration, to_micros
from urbis.security.policy import AUDIT, hooks, internal, requires
from urbis.storage.security_base import AuditStore

log = logging.getLogger(__name__)
PAGE = 1000
# Records purged this much younger than the retention are still fine (a chain is sealed in
# the order records commit, which may differ from their times by a little).
GRACE_MICROS = 3_600_000_000


@dataclass(slots=True)
class Verification:
    """The outcome of walking the chain: ok, or the first problem found."""

    ok: bool
    checked: int
    state: ChainState
    problem: str | None = None
    position: int | None = None  # chain position of the problem

    def to_json(self) -> dict[str, object]:
        """As `urbis audit verify --json` prints it."""
        s = self.state
        return {"ok": self.ok, "checked": self.checked, "problem": self.problem,
                "position": self.position, "anchorPosition": s.anchor_pos,
                "anchorHash": s.anchor_hash, "anchorAt": s.anchor_at,
                "headPosition": s.head_pos, "headHash": s.head_hash, "unsealed": s.unsealed}


class AuditService:
    """The audit log of one process (its store is shared by every worker)."""

    def __init__(self, store: AuditStore, *, enabled: bool = True,
                 retention_micros: int | None = None, seal_interval: float = 1.0,
                 purge_interval: float = 3600.0) -> None:
        self.store = store
        self.enabled = enabled  # off: nothing new is recorded (the log can still be read)
        self.retention_micros = retention_micros
        self.seal_interval = seal_interval
        self.purge_interval = purge_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sealer (and the retention purge)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    @internal
    async def close(self) -> None:
        """Stop the sealer, sealing what is left."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self.seal()
        except Exception:
            log.exception("could not seal the audit log at close")

    async def _loop(self) -> None:
        next_purge = time.monotonic()
        while True:
            try:
                await self.seal()
                if self.retention_micros is not None and time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.purge_interval
                    await self.purge()
            except Exception:
                log.exception("audit sealing or purge failed; trying again later")
            await asyncio.sleep(self.seal_interval)

    @internal
    async def seal(self) -> int:
        """Chain every record written so far; how many."""
        total = 0
        while True:
            done = await self.store.seal(PAGE)
            total += done
            if done < PAGE:
                return total

    @internal
    async def purge(self) -> int:
        """Delete the sealed records older than the retention; how many."""
        if self.retention_micros is None:
            return 0
        before = at_text(to_micros(now_iso()) - self.retention_micros)
        total = 0
        while True:
            done = await self.store.purge(before)
            total += done
            if not done:
                return total
            await asyncio.sleep(0)  # let requests in between batches

    @internal
    async def record(self, actor: Actor, operation: str, decision: str = ALLOW,
                     reason: str | None = None, entity_ids: Sequence[str] = (),
                     attributes: Iterable[str] = ()) -> None:
        """Record a decision on an operation (e.g. a read of sensitive attributes)."""
        if not self.enabled:
            return
        call = Call(actor, operation, hooks.request_id())
        await self.store.append(call_record(call, decision, reason, entity_ids, attributes))

    @internal
    async def denied(self, call: Call, error: NgsiError) -> None:
        """Record a refusal (the policy's on_deny hook)."""
        if not self.enabled:
            return
        await self.store.append(call_record(call, "deny", error.detail))

    @internal
    async def allowed(self, call: Call, entity_ids: Sequence[str]) -> None:
        """Record a change no entity journal sees (the policy's on_allow hook)."""
        if self.enabled:
            await self.store.append(call_record(call, ALLOW, None, entity_ids))

    @requires(AUDIT)
    async def query(self, actor: Actor, selection: AuditFilter) -> list[AuditRecord]:
        """Records matching the filter (within the admin's tenants)."""
        return await self.store.query(_scoped(actor, selection))

    @requires(AUDIT)
    async def export(self, actor: Actor, selection: AuditFilter
                     ) -> AsyncIterator[AuditRecord]:
        """Every record matching the filter, in seq order, a page at a time."""
        return self._pages(_scoped(actor, selection))

    async def _pages(self, selection: AuditFilter) -> AsyncIterator[AuditRecord]:
        after, left, offset = selection.after_seq, selection.limit, selection.offset
        while left > 0:  # the offset skips records of the first page only; then keyset
            page = await self.store.query(replace(selection, after_seq=after,
                                                  limit=min(PAGE, left), offset=offset))
            for record in page:
                yield record
            if len(page) < min(PAGE, left):
                return
            after, left, offset = page[-1].seq, left - len(page), 0

    @requires(AUDIT)
    async def verify(self, actor: Actor) -> Verification:
        """Walk the chain from its anchor: every position present, every hash right."""
        if actor.tenants is not None:
            raise Forbidden("only an admin of every tenant may verify the whole audit log")
        state = await self.store.state()
        result = Verification(True, 0, state)
        previous, expected, head_seen = state.anchor_hash, state.anchor_pos + 1, False
        if state.head_pos == state.anchor_pos:
            head_seen = state.head_hash == state.anchor_hash
        while True:
            page = await self.store.chain(expected - 1, PAGE)
            for record in page:
                problem = _check(record, expected, previous)
                if problem:
                    return _failed(result, problem, expected)
                previous, expected = record.hash or "", expected + 1
                result.checked += 1
                if record.chain_pos == state.head_pos:
                    head_seen = record.hash == state.head_hash
            if len(page) < PAGE:
                break
        if expected - 1 < state.head_pos:
            return _failed(result, f"records {expected} to {state.head_pos} of the chain are "
                                   "missing", expected)
        if not head_seen:
            return _failed(result, "the head of the chain does not match its records",
                           state.head_pos)
        return self._check_anchor(result)

    def _check_anchor(self, result: Verification) -> Verification:
        anchor_at = result.state.anchor_at
        if anchor_at is None or self.retention_micros is None:
            return result
        young = to_micros(now_iso()) - self.retention_micros + GRACE_MICROS
        try:
            purged_at = to_micros(anchor_at)
        except NgsiError:
            return _failed(result, f"the anchor's time {anchor_at!r:.40} was changed",
                           result.state.anchor_pos)
        if purged_at > young:
            return _failed(result, f"records up to {result.state.anchor_pos} were deleted "
                                   "before their retention ended", result.state.anchor_pos)
        return result


def _check(record: AuditRecord, expected: int, previous: str) -> str | None:
    if record.chain_pos != expected:
        return f"record {expected} of the chain is missing (the next is {record.chain_pos})"
    if record.hash != chain_hash(previous, record):
        return f"record {expected} (seq {record.seq}) was changed: its hash does not match"
    return None


def _failed(result: Verification, problem: str, position: int) -> Verification:
    result.ok, result.problem, result.position = False, problem, position
    return result


def _scoped(actor: Actor, selection: AuditFilter) -> AuditFilter:
    """The filter limited to the tenants of the admin's credential."""
    if actor.tenants is None:
        return selection
    allowed = actor.tenants if selection.tenants is None else \
        actor.tenants & set(selection.tenants)
    return replace(selection, tenants=sorted(allowed))


def audit_retention(text: str) -> int | None:
    """The audit_retention setting in microseconds (None: keep records for ever)."""
    if not text.strip():
        return None
    return parse_duration(text.strip(), "audit_retention").approx_micros()
