"""The RegistrationStore Protocol: context source registrations per tenant.

Registrations are stored with their terms expanded (`urbis.context.registration`). Besides
each registration's document a store keeps an index of (tenant, entity type or any, entity id
or any) and (attribute or any) per information item, so the registrations an operation may be
served by are an index look-up (`matching`), never a scan of every registration. Each write
also records the change (before / after) in the same transaction for the notifications of
subscriptions to registrations (`claim_changes` / `finish_changes`, at least once), and is
announced on the InvalidationChannel (TOPIC_REGISTRATIONS, key: the tenant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from urbis.context.registration import Registration

TOPIC_REGISTRATIONS = "registrations"  # key: the tenant whose registrations changed
TOPIC_CSOURCE_SUBSCRIPTIONS = "csourceSubscriptions"  # key: the tenant

# A registration update receives the stored registration and returns the new one (or raises
# NgsiError); it runs inside the backend's transaction.
RegistrationUpdate = Callable[[Registration], Registration]
# The exact test of a query, applied by the store after its index narrowed the candidates.
RegistrationTest = Callable[[Registration], bool]


@dataclass(slots=True)
class RegistrationQuery:
    """Which registrations: index narrowing (None: no restriction), then `test`, then a page.

    A registration passes the narrowing when one of its information items names one of
    `types` (or no entities) and one of `attrs` (or no attributes), and, with `ids`, one of
    its entities is one of them or names no id. `test` decides exactly.
    """

    types: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    attrs: Sequence[str] | None = None
    test: RegistrationTest | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass(slots=True)
class RegistrationPage:
    """A page of registrations, and the total count when it was asked for."""

    registrations: list[Registration]
    count: int | None = None


@dataclass(slots=True)
class RegistrationChange:
    """One registration write: the state before and after (None: absent / deleted)."""

    seq: int
    tenant: str
    before: Registration | None
    after: Registration | None
    created: float  # epoch seconds of the write


@dataclass(slots=True)
class SourceTally:
    """Distributed operations sent to one registration's source since the last flush."""

    tenant: str
    registration_id: str
    sent: int = 0
    failed: int = 0
    last_success: str | None = None
    last_failure: str | None = None
    status: str | None = None  # "ok" / "failed" of the latest attempt


@runtime_checkable
class RegistrationStore(Protocol):
    """Context source registrations per tenant, indexed for matching (see the module)."""

    async def tenant_exists(self, tenant: str) -> bool:
        """True once a tenant has had its first write."""

    async def create(self, tenant: str, registration: Registration, now: str) -> None:
        """Store a new registration (its tenant then exists).

        AlreadyExists for a known id; Conflict when it overlaps a live registration it may
        not coexist with (`urbis.context.registration_match.conflicts`), checked in the same
        transaction as the write, one proxied (exclusive or redirect) write at a time.
        """

    async def get(self, tenant: str, registration_id: str) -> Registration | None:
        """One registration by id, with its status counters."""

    async def query(self, tenant: str, query: RegistrationQuery) -> RegistrationPage:
        """A page of the registrations passing the query, in creation order."""

    async def update(self, tenant: str, registration_id: str, fn: RegistrationUpdate,
                     now: str) -> Registration:
        """Read, change with `fn` and write atomically; ResourceNotFound; Conflict."""

    async def delete(self, tenant: str, registration_id: str) -> bool:
        """Delete; False when it did not exist."""

    async def matching(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                       attrs: Sequence[str] | None, operation: str, now: str
                       ) -> list[Registration]:
        """Live registrations that serve `operation` on such an entity, in creation order.

        `urbis.context.registration_match.serves` decides; None (or empty) types / attrs
        restrict nothing; `entity_id` None is a query over many entities. An index look-up
        by type and id.
        """

    async def count(self, tenant: str, now: str) -> int:
        """How many live (unexpired) registrations the tenant has."""

    async def live(self, tenant: str, now: str, limit: int) -> list[Registration]:
        """Up to `limit` live registrations of the tenant, in creation order (for caches)."""

    async def record_outcomes(self, tallies: Sequence[SourceTally]) -> None:
        """Add distributed-operation outcomes (timesSent, status ...); gone ones skipped."""

    async def claim_changes(self, limit: int, lease: float) -> list[RegistrationChange]:
        """Up to `limit` unclaimed (or lease-expired) changes in write order, leased to us."""

    async def finish_changes(self, seqs: Sequence[int]) -> None:
        """Delete handled changes."""
