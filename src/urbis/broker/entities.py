"""Entity services: every NGSI-LD entity operation, for one caller, over an EntityStore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from urbis.context import operations as ops
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, NgsiError, NonexistentTenant, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity, now_iso
from urbis.context.normalize import check_name, check_uri, parse_attributes, parse_entity
from urbis.storage.base import (
    AttributeInfo,
    Change,
    EntityQuery,
    EntityStore,
    Mutation,
    MutationOutcome,
    QueryResult,
    TypeInfo,
)

Fn = Callable[[Entity | None], Change]


@dataclass(slots=True)
class BatchResult:
    """Per-entity outcome of a batch operation."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


class EntityService:
    """Create, read, update, delete and query entities; the only way adapters reach the store."""

    def __init__(self, store: EntityStore) -> None:
        self.store = store

    async def _one(self, actor: Actor, entity_id: str, fn: Fn) -> Change:
        [outcome] = await self.store.mutate(actor.tenant, [Mutation(entity_id, fn)])
        if outcome.error is not None:
            raise outcome.error
        assert outcome.change is not None
        return outcome.change

    async def require_tenant(self, actor: Actor) -> None:
        """NonexistentTenant when a named tenant has never been written to."""
        if not actor.is_default_tenant and not await self.store.tenant_exists(actor.tenant):
            raise NonexistentTenant(f"tenant {actor.tenant} does not exist")

    async def create(self, actor: Actor, body: Any, tm: TermMap) -> str:
        """POST /entities."""
        entity = parse_entity(body, tm)
        now = now_iso()
        await self._one(actor, entity.id, lambda cur: Change(ops.create(cur, entity, now)))
        return entity.id

    async def get(self, actor: Actor, entity_id: str) -> Entity:
        """GET /entities/{id}."""
        check_uri(entity_id, "entity id")
        await self.require_tenant(actor)
        entity = await self.store.get(actor.tenant, entity_id)
        if entity is None:
            raise ResourceNotFound(f"entity {entity_id} not found")
        return entity

    async def query(self, actor: Actor, query: EntityQuery) -> QueryResult:
        """GET /entities and POST /entityOperations/query."""
        await self.require_tenant(actor)
        return await self.store.query(actor.tenant, query)

    async def scan(self, actor: Actor, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """A page of matching entities with ids above `after`, in id order (exports)."""
        await self.require_tenant(actor)
        return await self.store.scan(actor.tenant, query, after)

    async def replace(self, actor: Actor, entity_id: str, body: Any, tm: TermMap) -> None:
        """PUT /entities/{id}."""
        check_uri(entity_id, "entity id")
        entity = parse_entity(body, tm, require_id=False, require_type=False, entity_id=entity_id)
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(ops.replace(cur, entity, now)))

    async def merge(self, actor: Actor, entity_id: str, body: Any, tm: TermMap) -> None:
        """PATCH /entities/{id} (merge-patch)."""
        check_uri(entity_id, "entity id")
        patch = _parse_fragment(body, tm, entity_id, allow_null=True)
        now = now_iso()
        await self._one(actor, entity_id,
                        lambda cur: Change(ops.merge_entity(cur, entity_id, patch, now)))

    async def delete(self, actor: Actor, entity_id: str) -> None:
        """DELETE /entities/{id}."""
        check_uri(entity_id, "entity id")
        await self._one(actor, entity_id,
                        lambda cur: Change(delete=bool(ops.require(cur, entity_id))))

    async def append_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap,
                           overwrite: bool = True) -> ops.AttrReport:
        """POST /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        patch = _parse_fragment(body, tm, entity_id)
        now = now_iso()

        def fn(cur: Entity | None) -> Change:
            entity, report = ops.append_attrs(cur, entity_id, patch.attrs, now, overwrite,
                                              patch.types)
            return Change(entity, result=report)

        return (await self._one(actor, entity_id, fn)).result

    async def update_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap
                           ) -> ops.AttrReport:
        """PATCH /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        patch = _parse_fragment(body, tm, entity_id)
        now = now_iso()

        def fn(cur: Entity | None) -> Change:
            entity, report = ops.update_attrs(cur, entity_id, patch.attrs, now)
            return Change(entity if report.updated else None, result=report)

        return (await self._one(actor, entity_id, fn)).result

    async def patch_attr(self, actor: Actor, entity_id: str, attr: str, body: Any, tm: TermMap,
                         replace: bool = False) -> None:
        """PATCH (or PUT with replace) /entities/{id}/attrs/{attrId}."""
        check_uri(entity_id, "entity id")
        name = tm.expand(check_name(attr))
        if not isinstance(body, dict):
            raise BadRequestData("the attribute fragment must be a JSON object")
        inst = ops.single_instance(parse_attributes({attr: body}, tm, allow_null=not replace),
                                   name)
        op = ops.replace_attr if replace else ops.patch_attr
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(op(cur, entity_id, name, inst, now)))

    async def delete_attr(self, actor: Actor, entity_id: str, attr: str, tm: TermMap,
                          dataset_id: str | None = None, delete_all: bool = False) -> None:
        """DELETE /entities/{id}/attrs/{attrId}."""
        check_uri(entity_id, "entity id")
        name = tm.expand(check_name(attr))
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(
            ops.delete_attr(cur, entity_id, name, dataset_id, delete_all, now)))

    async def delete_by_type(self, actor: Actor, type_name: str, tm: TermMap) -> int:
        """DELETE /entities?type=T (purge)."""
        await self.require_tenant(actor)
        return await self.store.delete_by_type(actor.tenant, tm.expand(check_name(type_name)))

    async def types(self, actor: Actor) -> list[TypeInfo]:
        """GET /types."""
        await self.require_tenant(actor)
        return await self.store.types(actor.tenant)

    async def attributes(self, actor: Actor) -> list[AttributeInfo]:
        """GET /attributes."""
        await self.require_tenant(actor)
        return await self.store.attributes(actor.tenant)

    async def run_batch(self, actor: Actor, mutations: list[Mutation],
                        errors: list[tuple[str, NgsiError]]) -> BatchResult:
        """Apply prepared mutations in one transaction and collect per-entity results."""
        result = BatchResult(errors=list(errors))
        outcomes: list[MutationOutcome] = []
        if mutations:
            outcomes = await self.store.mutate(actor.tenant, mutations)
        for outcome in outcomes:
            if outcome.error is not None:
                result.errors.append((outcome.entity_id, outcome.error))
            else:
                result.success.append(outcome.entity_id)
                if outcome.change is not None and outcome.change.result == "created":
                    result.created.append(outcome.entity_id)
        return result


def _parse_fragment(body: Any, tm: TermMap, entity_id: str, allow_null: bool = False) -> Entity:
    if not isinstance(body, dict):
        raise BadRequestData("the request body must be a JSON object")
    if "id" in body and body["id"] != entity_id:
        raise BadRequestData(f"id {body['id']!r:.100} in the body differs from {entity_id}")
    return parse_entity({**body, "id": entity_id}, tm, require_type=False, allow_null=allow_null)
