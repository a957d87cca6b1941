"""Storage Protocols: what the services need from any backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from urbis.context.errors import NgsiError
from urbis.context.model import Entity
from urbis.context.subscription import Subscription

# Capability flags a backend may declare.
CAP_GEO = "geo"
CAP_REGEX = "regex"
# Other processes may write the same store: in-process caches must follow its
# InvalidationChannel (PostgreSQL; the embedded SQLite store has one process and needs none).
CAP_INVALIDATION = "invalidation"

# Topics of cache invalidations; a key of None means every key of the topic.
TOPIC_ALL = "*"  # anything may have changed (e.g. announcements were missed)
TOPIC_CONTEXTS = "contexts"  # key: the URL of a stored @context that changed or went
TOPIC_TENANTS = "tenants"  # key: a tenant that went
TOPIC_SUBSCRIPTIONS = "subscriptions"  # key: the tenant whose subscriptions changed
TOPIC_APIKEYS = "apikeys"  # key: the id of an API key that was revoked


@dataclass(slots=True)
class EntityQuery:
    """A compiled entity query; every filter runs in the backend, never over all rows in Python.

    `type_expr`, `q`, `scope_q` and `geo` are ASTs from `urbis.context.query` and
    `urbis.context.geo`, with terms already expanded to IRIs.
    """

    ids: Sequence[str] | None = None
    id_pattern: str | None = None
    type_expr: Any = None
    attrs: Sequence[str] | None = None  # entity must have at least one of these attributes
    q: Any = None
    scope_q: Any = None
    geo: Any = None
    order_by: Sequence[tuple[str, bool]] = ()  # (attribute IRI or "id"/"type", descending)
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass(slots=True)
class QueryResult:
    """A page of entities, and the total count when it was asked for."""

    entities: list[Entity]
    count: int | None = None


@dataclass(slots=True)
class Change:
    """What a mutation decided: write `entity` (or delete it when `delete`), or nothing."""

    entity: Entity | None = None
    delete: bool = False
    result: Any = None


# A mutation receives the current entity (None if absent) and returns a Change or raises
# NgsiError; it runs inside the backend's transaction, serialised per entity.
MutationFn = Callable[[Entity | None], Change]


@dataclass(slots=True)
class Mutation:
    """One entity's read-modify-write within a batch."""

    entity_id: str
    fn: MutationFn


@dataclass(slots=True)
class MutationOutcome:
    """The result of one Mutation: the Change applied or the error that refused it."""

    entity_id: str
    change: Change | None = None
    error: NgsiError | None = None


@dataclass(slots=True, frozen=True)
class Applied:
    """One entity change a batch wrote, as a journal sees it inside the write transaction.

    `before` is the state the mutation started from and `after` the state it wrote (None:
    absent before / deleted). Both are private copies nobody changes afterwards. A batch that
    touches an entity twice yields two Applied, in order.
    """

    entity_id: str
    before: Entity | None
    after: Entity | None


@dataclass(slots=True)
class TypeInfo:
    """Discovery information on one entity type."""

    type: str
    count: int
    attributes: dict[str, set[str]] = field(default_factory=dict)  # IRI -> attribute types


@dataclass(slots=True)
class AttributeInfo:
    """Discovery information on one attribute name."""

    name: str
    count: int
    types: set[str] = field(default_factory=set)  # entity types having it
    attribute_types: set[str] = field(default_factory=set)


@dataclass(slots=True)
class StoredContext:
    """A JSON-LD @context kept by the broker (hosted, or a cached remote one)."""

    id: str
    url: str
    kind: str  # "hosted" | "cached" | "implicitlycreated"
    body: Any
    created_at: str
    last_used_at: str | None = None
    hits: int = 0


# Called with (topic, key) once a change of another process (or this one) is committed.
InvalidationListener = Callable[[str, str | None], None]


@runtime_checkable
class InvalidationChannel(Protocol):
    """Committed changes that make in-process caches stale, announced by any process."""

    def subscribe(self, listener: InvalidationListener) -> None:
        """Call `listener` for every announcement; TOPIC_ALL when some may have been missed."""


@runtime_checkable
class EntityStore(Protocol):
    """Current state of entities, per tenant."""

    capabilities: frozenset[str]

    async def open(self) -> None:
        """Connect and create or upgrade the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def tenant_exists(self, tenant: str) -> bool:
        """True once a tenant has had its first write."""

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """One entity by id."""

    async def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """Entities matching the query, filtered, ordered and paginated in the backend."""

    async def scan(self, tenant: str, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """Up to `query.limit` matching entities with an id above `after`, in id order.

        Keyset paging (exports): each page is an index range from where the last one ended, so
        reading every entity costs the same per page however far it has got. `order_by`,
        `offset` and `count` of the query are ignored; ids compare by code point.
        """

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Apply read-modify-write mutations atomically; one transaction for the batch."""

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """Delete every entity of a type; the number deleted."""

    async def types(self, tenant: str) -> list[TypeInfo]:
        """Every entity type with counts and attribute names."""

    async def attributes(self, tenant: str) -> list[AttributeInfo]:
        """Every attribute name with the types that have it."""

    async def tenant_counts(self) -> dict[str, int]:
        """Entities per tenant (for monitoring)."""


@runtime_checkable
class ContextStore(Protocol):
    """JSON-LD contexts managed through /jsonldContexts (not per tenant)."""

    async def put_context(self, ctx: StoredContext) -> None:
        """Insert or replace a context by id."""

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A context by id (its URL for cached ones)."""

    async def find_context_by_url(self, url: str) -> StoredContext | None:
        """A context by the URL it is served or was fetched from."""

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        """Every stored context, optionally of one kind."""

    async def delete_context(self, context_id: str) -> bool:
        """Delete; False when it did not exist."""

    async def record_usage(self, context_id: str, hits: int, last_used_at: str) -> None:
        """Add hits to a context's counter (atomically; nothing if it is gone)."""


@dataclass(slots=True)
class SubscriptionPage:
    """A page of subscriptions, and the total count when it was asked for."""

    subscriptions: list[Subscription]
    count: int | None = None


@dataclass(frozen=True, slots=True)
class NotificationOutcome:
    """One notification attempt of a subscription, as the notifier records it."""

    ok: bool  # delivered (a 2xx answer, or accepted by the MQTT broker)
    at: str  # when it was sent, an NGSI-LD DateTime
    final: bool = True  # a failure after which the notification is given up (status failed)


# A subscription update receives the stored subscription and returns the new one (or raises
# NgsiError); it runs inside the backend's transaction, so concurrent updates never interleave.
SubscriptionUpdate = Callable[[Subscription], Subscription]


@runtime_checkable
class SubscriptionStore(Protocol):
    """Subscriptions per tenant, indexed by the entity types and attributes they watch.

    Terms are stored expanded (see `urbis.context.subscription`). Besides each subscription's
    document a store keeps an index of (tenant, type IRI or any, subscription) and (tenant,
    watched attribute IRI or any, subscription), so finding the subscriptions a change may
    match is an index look-up (`candidates`), never a scan of every subscription.
    """

    async def open(self) -> None:
        """Connect and create or upgrade the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def tenant_exists(self, tenant: str) -> bool:
        """True once a tenant has had its first write (an entity or a subscription)."""

    async def create(self, tenant: str, subscription: Subscription) -> None:
        """Store a new subscription (its tenant then exists); AlreadyExists for a known id."""

    async def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """One subscription by id, with its delivery counters."""

    async def query(self, tenant: str, *, limit: int, offset: int = 0, count: bool = False
                    ) -> SubscriptionPage:
        """A page of the tenant's subscriptions in creation order."""

    async def update(self, tenant: str, subscription_id: str, fn: SubscriptionUpdate
                     ) -> Subscription:
        """Read, change with `fn` and write one subscription atomically; ResourceNotFound."""

    async def delete(self, tenant: str, subscription_id: str) -> bool:
        """Delete; False when it did not exist."""

    async def record_notification(self, tenant: str, subscription_id: str,
                                  outcome: NotificationOutcome) -> bool:
        """Count one notification attempt (timesSent, lastSuccess ...); False if gone."""

    async def active(self, now: str) -> list[tuple[str, Subscription]]:
        """(tenant, subscription) of every tenant's subscriptions not paused nor expired."""

    async def candidates(self, tenant: str, types: Sequence[str], attrs: Sequence[str],
                         now: str) -> list[Subscription]:
        """Active subscriptions a change of these attributes of an entity of these types may match.

        Index look-ups only: the exact match (entities, q, geoQ, triggers ...) is the caller's.
        Periodic (timeInterval) subscriptions are never candidates.
        """

    async def record_notifications(self, tallies: Sequence[DeliveryTally]) -> None:
        """Add the outcomes of many attempts at once (one statement; gone ones are skipped)."""


@dataclass(slots=True)
class DeliveryTally:
    """Attempts of one subscription's notifications since the last flush of the counters."""

    tenant: str
    subscription_id: str
    sent: int = 0
    failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_status: str | None = None  # "ok" / "failed" of the latest final outcome, else None


# --- notification outbox ---------------------------------------------------------------


@dataclass(slots=True)
class OutboxChange:
    """The changes of one write batch of a tenant, recorded in its transaction."""

    seq: int
    tenant: str
    changes: list[Applied]
    created: float  # epoch seconds of the write


@dataclass(slots=True)
class PendingNotification:
    """A notification to send again later (its first attempt failed or was deferred)."""

    tenant: str
    subscription_id: str
    body: dict[str, Any]  # the Notification, without @context
    attempts: int = 0  # attempts made so far
    next_at: float = 0.0  # epoch seconds
    error: str | None = None
    seq: int = 0  # set by the store


# Decides in the write transaction whether a batch's changes are kept for notifications
# (False when no subscription can match them): it must be cheap, and never block.
OutboxFilter = Callable[[str, Sequence[Applied]], bool]


@runtime_checkable
class OutboxStore(Protocol):
    """The durable outbox of notifications (architecture rule 7).

    The entity store's journal records each write batch's changes (`OutboxChange`) in the
    write's own transaction, so a change acknowledged by a 2xx is never lost. Notifiers of any
    process claim changes and due retries under a lease (a row is handed to one claimer at a
    time until the lease ends), send, and then delete them.
    """

    def set_filter(self, keep: OutboxFilter) -> None:
        """Record only the batches `keep` accepts (by default: every batch)."""

    async def claim_changes(self, limit: int, lease: float) -> list[OutboxChange]:
        """Up to `limit` unclaimed (or lease-expired) changes in write order, leased to us."""

    async def finish_changes(self, seqs: Sequence[int],
                             retries: Sequence[PendingNotification]) -> list[int]:
        """Delete handled changes and queue the notifications to retry, atomically.

        Returns the seq of each queued retry, in order.
        """

    async def claim_retries(self, limit: int, lease: float) -> list[PendingNotification]:
        """Up to `limit` retries due now, leased to us (in next_at order)."""

    async def finish_retries(self, done: Sequence[int],
                             again: Sequence[PendingNotification]) -> None:
        """Delete the retries in `done`; reschedule `again` (attempts, next_at, error)."""

    async def claim_periodic(self, now: float, limit: int
                             ) -> list[tuple[str, Subscription]]:
        """Periodic subscriptions due at `now`; each is given to one claimer per interval."""

    async def backlog(self) -> tuple[int, int]:
        """(changes, retries) waiting."""
