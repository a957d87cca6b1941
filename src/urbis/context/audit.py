"""Audit records and their hash chain (pure: no I/O).

One record says who (tenant, principal, roles, client address, request id) did what
(operation, entity ids, attributes) when, with which decision (`allow` / `deny`) and why.
Sealing gives each record, in turn, its position in the chain (`chain_pos`) and
`hash = SHA-256(previous hash + "\\n" + canonical JSON of the record)`, so changing, removing
or reordering a sealed record breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from urbis.context.actor import Call
from urbis.context.model import Entity, now_iso

ALLOW = "allow"
DENY = "deny"
DECISIONS = (ALLOW, DENY)
GENESIS = ""  # the hash before the first record
MAX_IDS = 1000  # entity ids kept in one record (entity_count has them all)
MAX_ATTRS = 1000
INTERNAL = "urbis"  # the principal of changes made outside any service operation
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class AuditRecord:
    """One audit entry; `seq`, `chain_pos` and `hash` are set by the store and the sealer."""

    at: str
    tenant: str
    principal: str
    roles: list[str]
    operation: str
    decision: str = ALLOW
    reason: str | None = None
    entity_ids: list[str] = field(default_factory=list)
    entity_count: int = 0
    attributes: list[str] = field(default_factory=list)
    client: str | None = None
    request_id: str | None = None
    seq: int = 0
    chain_pos: int | None = None
    hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the admin API and exports show it."""
        return {"seq": self.seq, "at": self.at, "tenant": self.tenant,
                "principal": self.principal, "roles": self.roles, "client": self.client,
                "requestId": self.request_id, "operation": self.operation,
                "decision": self.decision, "reason": self.reason,
                "entityIds": self.entity_ids, "entityCount": self.entity_count,
                "attributes": self.attributes, "chainPos": self.chain_pos, "hash": self.hash}


@dataclass(slots=True)
class AuditFilter:
    """Which records a query returns (every member optional), in seq order."""

    tenants: Sequence[str] | None = None  # any of these (None: every tenant)
    principal: str | None = None
    operation: str | None = None
    entity_id: str | None = None
    decision: str | None = None
    since: str | None = None  # at >= since (DateTime text as now_iso writes it)
    until: str | None = None  # at < until
    after_seq: int = 0  # keyset paging (exports)
    limit: int = 100
    offset: int = 0


@dataclass(slots=True)
class ChainState:
    """Where the chain starts (after purged records) and ends, and what waits to be sealed."""

    anchor_pos: int = 0  # chain_pos of the last purged record (0: none purged)
    anchor_hash: str = GENESIS
    head_pos: int = 0  # chain_pos of the last sealed record
    head_hash: str = GENESIS
    unsealed: int = 0
    anchor_at: str | None = None  # when the last purged record was written


class Changed(Protocol):
    """What a storage journal hands over for each changed entity."""

    @property
    def entity_id(self) -> str: ...

    @property
    def before(self) -> Entity | None: ...

    @property
    def after(self) -> Entity | None: ...


def canonical(record: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every member but the hash, in a fixed order."""
    return orjson.dumps([record.seq, record.chain_pos, record.at, record.tenant,
                         record.principal, record.roles, record.client, record.request_id,
                         record.operation, record.decision, record.reason, record.entity_ids,
                         record.entity_count, record.attributes])


def chain_hash(previous: str, record: AuditRecord) -> str:
    """The hash of a record following one whose hash is `previous`."""
    return hashlib.sha256(previous.encode() + b"\n" + canonical(record)).hexdigest()


def seal(records: Iterable[AuditRecord], state: ChainState) -> list[AuditRecord]:
    """Give each record (in order) the next chain position and its hash; moves the head."""
    done = []
    for record in records:
        state.head_pos += 1
        record.chain_pos = state.head_pos
        record.hash = state.head_hash = chain_hash(state.head_hash, record)
        done.append(record)
    return done


def changed_attributes(before: Entity | None, after: Entity | None) -> set[str]:
    """Attribute IRIs whose instances differ (all of them for a creation or deletion)."""
    if before is None or after is None:
        either = after if after is not None else before
        return set(either.attrs) if either is not None else set()
    old, new = before.attrs, after.attrs
    return {a for a in old.keys() | new.keys() if old.get(a) != new.get(a)}


def batch_record(call: Call | None, tenant: str, changes: Sequence[Changed],
                 at: str | None = None) -> AuditRecord:
    """The one record of a storage write batch, made by the current service call."""
    ids = list(dict.fromkeys(c.entity_id for c in changes))
    attrs: set[str] = set()
    for c in changes:
        attrs |= changed_attributes(c.before, c.after)
    return AuditRecord(
        at=at or now_iso(), tenant=tenant,
        principal=call.actor.principal if call else INTERNAL,
        roles=sorted(call.actor.roles) if call else [],
        operation=call.operation if call else "internal",
        entity_ids=ids[:MAX_IDS], entity_count=len(ids),
        attributes=sorted(attrs)[:MAX_ATTRS],
        client=call.actor.client if call else None,
        request_id=call.request_id if call else None)


def call_record(call: Call, decision: str, reason: str | None,
                entity_ids: Sequence[str] = (), attributes: Iterable[str] = ()) -> AuditRecord:
    """A record of a decision on a service call (a denial, a read of sensitive data)."""
    ids = list(dict.fromkeys(entity_ids))
    actor = call.actor
    return AuditRecord(at=now_iso(), tenant=actor.tenant, principal=actor.principal,
                       roles=sorted(actor.roles), operation=call.operation, decision=decision,
                       reason=reason[:1000] if reason else reason, entity_ids=ids[:MAX_IDS],
                       entity_count=len(ids), attributes=sorted(set(attributes))[:MAX_ATTRS],
                       client=actor.client, request_id=call.request_id)


def at_text(micros: int) -> str:
    """Microseconds since the epoch in the form of `at` (always six fraction digits), so
    that bounds compare with records as text."""
    m = _EPOCH + timedelta(microseconds=micros)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond:06d}Z")
