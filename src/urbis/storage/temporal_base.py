"""Storage Protocol of entity histories (the temporal API) and what it takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from urbis.context.model import Entity, Instance
from urbis.context.temporal import TimeFilter
from urbis.context.temporal_records import Record
from urbis.storage.base import EntityQuery


@dataclass(slots=True)
class TemporalQuery:
    """A temporal query: which entities (`entities`: its ids, idPattern, type, q, scopeQ and geo
    filters and its page), which attributes, which instances, and how to aggregate them.

    Times are microseconds since the epoch. Without `aggr_methods` each attribute's instances in
    the time range come in time order, at most `instance_limit` (the last ones with lastN);
    with them, one aggregate per `aggr_period` bucket (0: the whole range), computed in SQL.
    """

    entities: EntityQuery
    time: TimeFilter = field(default_factory=TimeFilter)
    instance_limit: int = 1000
    aggr_methods: Sequence[str] = ()
    aggr_period: int = 0


@dataclass(slots=True)
class Aggregate:
    """The aggregates of one attribute instance series (attribute + datasetId) per bucket."""

    dataset_id: str | None
    attr_type: str
    # method -> [(value, bucket start, bucket end)], times in microseconds
    values: dict[str, list[tuple[Any, int, int]]] = field(default_factory=dict)


@dataclass(slots=True)
class TemporalEntity:
    """An entity's history: its instances per attribute (time order) or their aggregates.

    Each instance is in the internal form plus "instanceId", "createdAt" and "modifiedAt"
    (and "deletedAt" for the record of a deletion), and its time (of the query's
    timeproperty) in microseconds under "@t".
    """

    id: str
    types: list[str]
    scopes: list[str] | None
    created_at: str
    modified_at: str
    deleted_at: str | None = None
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    aggregates: dict[str, list[Aggregate]] = field(default_factory=dict)


@dataclass(slots=True)
class TemporalPage:
    """A page of temporal entities; `truncated` is the (start, end) time range returned when
    some attribute had more instances than the limit (then the response is partial)."""

    entities: list[TemporalEntity]
    count: int | None = None
    truncated: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long instances are kept (microseconds), per entity type IRI and by default.

    An entity with several ruled types keeps its instances for the longest of their periods.
    """

    default: int
    by_type: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class TemporalStore(Protocol):
    """The temporal evolution of entities, per tenant: attribute instances over time.

    Entity changes reach it through the entity store's journal (same transaction), which may
    keep them pending and write them into histories in bulk later (`settle`); the temporal
    API adds, modifies and deletes instances directly.
    """

    async def add(self, tenant: str, entity: Entity, records: Sequence[Record], now: str
                  ) -> bool:
        """Record an entity's type/scope and some instances; True if its history is new."""

    async def query(self, tenant: str, query: TemporalQuery) -> TemporalPage:
        """Histories of the entities matching the query, filtered and paged in the backend."""

    async def delete_entity(self, tenant: str, entity_id: str) -> bool:
        """Forget an entity's whole history; False when there was none."""

    async def delete_attr(self, tenant: str, entity_id: str, attr: str,
                          dataset_id: str | None, delete_all: bool) -> bool:
        """Forget an attribute's instances (of one datasetId, or all); False if none."""

    async def modify_instance(self, tenant: str, entity_id: str, attr: str, key: int,
                              instance: Instance, now: str) -> bool:
        """Replace one instance's value and metadata; False when it does not exist."""

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, key: int) -> bool:
        """Delete one instance; False when it does not exist."""

    async def expire(self, retention: Retention, now: int, batch: int = 5000) -> int:
        """Delete up to `batch` instances observed longer ago than retention; how many.

        An instance's time is its observedAt, or when it was recorded if it has none.
        """

    async def backlog(self) -> tuple[int, int]:
        """(write batches, entity changes) journaled and not yet settled."""

    async def settle(self, limit: int = 64) -> int:
        """Write up to `limit` journaled write batches into histories; how many it wrote.

        Every other method sees all journaled changes, settled or not.
        """
