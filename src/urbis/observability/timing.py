"""An EntityStore that times every call into `urbis_store_operation_seconds`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from urbis.context.model import Entity
from urbis.observability.metrics import STORE_LATENCY
from urbis.storage.base import (
    AttributeInfo,
    EntityQuery,
    EntityStore,
    Mutation,
    MutationOutcome,
    QueryResult,
    TypeInfo,
)

_GET, _QUERY, _MUTATE, _SCAN = (STORE_LATENCY.labels(op)
                                for op in ("get", "query", "mutate", "scan"))


class TimedEntityStore:
    """Delegates to a store; the hot calls are timed (a histogram observation each)."""

    def __init__(self, inner: EntityStore) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # backend extras (journals, note_tenant...)

    async def open(self) -> None:
        """Open the inner store."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the inner store."""
        await self.inner.close()

    async def tenant_exists(self, tenant: str) -> bool:
        """As the inner store (usually a cache hit: not timed)."""
        return await self.inner.tenant_exists(tenant)

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """Timed as `get`."""
        start = time.perf_counter()
        try:
            return await self.inner.get(tenant, entity_id)
        finally:
            _GET.observe(time.perf_counter() - start)

    async def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """Timed as `query`."""
        start = time.perf_counter()
        try:
            return await self.inner.query(tenant, query)
        finally:
            _QUERY.observe(time.perf_counter() - start)

    async def scan(self, tenant: str, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """Timed as `scan`."""
        start = time.perf_counter()
        try:
            return await self.inner.scan(tenant, query, after)
        finally:
            _SCAN.observe(time.perf_counter() - start)

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Timed as `mutate` (one transaction, whatever the batch size)."""
        start = time.perf_counter()
        try:
            return await self.inner.mutate(tenant, mutations)
        finally:
            _MUTATE.observe(time.perf_counter() - start)

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """As the inner store."""
        return await self.inner.delete_by_type(tenant, type_iri)

    async def types(self, tenant: str) -> list[TypeInfo]:
        """As the inner store."""
        return await self.inner.types(tenant)

    async def attributes(self, tenant: str) -> list[AttributeInfo]:
        """As the inner store."""
        return await self.inner.attributes(tenant)

    async def tenant_counts(self) -> dict[str, int]:
        """As the inner store."""
        return await self.inner.tenant_counts()
