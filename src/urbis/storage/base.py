"""Storage Protocols: what the services need from any backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from urbis.context.errors import NgsiError
from urbis.context.model import Entity

# Capability flags a backend may declare.
CAP_GEO = "geo"
CAP_REGEX = "regex"


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

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Apply read-modify-write mutations atomically; one transaction for the batch."""

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """Delete every entity of a type; the number deleted."""

    async def types(self, tenant: str) -> list[TypeInfo]:
        """Every entity type with counts and attribute names."""

    async def attributes(self, tenant: str) -> list[AttributeInfo]:
        """Every attribute name with the types that have it."""


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
