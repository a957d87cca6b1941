"""Entity services: every NGSI-LD entity operation, for one caller, over an EntityStore."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from urbis.context import operations as ops
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, NgsiError, NonexistentTenant, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity, now_iso
from urbis.context.normalize import check_name, check_uri, parse_attributes, parse_entity
from urbis.context.query.types import type_names
from urbis.security.policy import (
    DISCOVERY,
    ENTITIES_PURGE,
    ENTITIES_READ,
    ENTITIES_WRITE,
    DataPolicy,
    internal,
    named,
    requires,
)
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
SensitiveReadHook = Callable[[Actor, list[str], list[str]], Awaitable[None]]
# Called with (actor, entity id, attribute IRIs) after a PATCH of attributes committed.
PatchHook = Callable[[Actor, str, list[str]], Awaitable[None]]


@dataclass(slots=True)
class BatchResult:
    """Per-entity outcome of a batch operation."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


class EntityService:
    """Create, read, update, delete and query entities; the only way adapters reach the store."""

    def __init__(self, store: EntityStore, policy: DataPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or DataPolicy()
        # Called with (actor, entity ids, attribute IRIs) when sensitive attributes are read.
        self.on_sensitive_read: list[SensitiveReadHook] = []
        # Called with the tenant once a write has committed (the notifier wakes up).
        self.after_write: list[Callable[[str], None]] = []
        self.after_patch: list[PatchHook] = []  # the IoT agent sends commands from here

    def _wrote(self, tenant: str) -> None:
        for listener in self.after_write:
            listener(tenant)

    async def _one(self, actor: Actor, entity_id: str, fn: Fn) -> Change:
        [outcome] = await self.store.mutate(actor.tenant, [Mutation(entity_id, fn)])
        if outcome.change is not None:
            self._wrote(actor.tenant)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.change is not None
        return outcome.change

    @internal
    async def require_tenant(self, actor: Actor) -> None:
        """NonexistentTenant when a named tenant has never been written to."""
        if not actor.is_default_tenant and not await self.store.tenant_exists(actor.tenant):
            raise NonexistentTenant(f"tenant {actor.tenant} does not exist")

    @requires(ENTITIES_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap) -> str:
        """POST /entities."""
        entity = parse_entity(body, tm)
        self.policy.check_write(actor, [entity.id])
        now = now_iso()
        await self._one(actor, entity.id, lambda cur: Change(ops.create(cur, entity, now)))
        return entity.id

    @requires(ENTITIES_READ)
    async def get(self, actor: Actor, entity_id: str) -> Entity:
        """GET /entities/{id} (not found when the caller may not see it)."""
        check_uri(entity_id, "entity id")
        await self.require_tenant(actor)
        entity = await self.store.get(actor.tenant, entity_id)
        if entity is None or not self.policy.may_read(actor, entity.types, entity_id):
            raise ResourceNotFound(f"entity {entity_id} not found")
        return (await self.visible(actor, [entity]))[0]

    @requires(ENTITIES_READ)
    async def query(self, actor: Actor, query: EntityQuery) -> QueryResult:
        """GET /entities and POST /entityOperations/query."""
        self.policy.check_query(actor, type_names(query.type_expr) if query.type_expr else None)
        await self.require_tenant(actor)
        result = await self.store.query(actor.tenant, query)
        result.entities = await self.visible(actor, result.entities)
        return result

    @requires(ENTITIES_READ)
    async def scan(self, actor: Actor, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """A page of matching entities with ids above `after`, in id order (exports)."""
        self.policy.check_query(actor, type_names(query.type_expr) if query.type_expr else None)
        await self.require_tenant(actor)
        return await self.visible(actor, await self.store.scan(actor.tenant, query, after))

    @internal
    async def visible(self, actor: Actor, entities: list[Entity]) -> list[Entity]:
        """Entities without the attributes the caller may not see; sensitive reads reported."""
        policy = self.policy
        if not policy.sensitive:
            return entities
        read: set[str] = set()
        seen: set[str] = set()
        for entity in entities:
            for attr in list(entity.attrs):
                if policy.hidden(actor, attr):
                    del entity.attrs[attr]
                elif policy.sensitive_in([attr]):
                    read.add(entity.id)
                    seen.add(attr)
        if read:
            for hook in self.on_sensitive_read:
                await hook(actor, sorted(read), sorted(seen))
        return entities

    @requires(ENTITIES_WRITE)
    async def replace(self, actor: Actor, entity_id: str, body: Any, tm: TermMap) -> None:
        """PUT /entities/{id}."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        entity = parse_entity(body, tm, require_id=False, require_type=False, entity_id=entity_id)
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(ops.replace(cur, entity, now)))

    @requires(ENTITIES_WRITE)
    async def merge(self, actor: Actor, entity_id: str, body: Any, tm: TermMap) -> None:
        """PATCH /entities/{id} (merge-patch)."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        patch = parse_fragment(body, tm, entity_id, allow_null=True)
        now = now_iso()
        await self._one(actor, entity_id,
                        lambda cur: Change(ops.merge_entity(cur, entity_id, patch, now)))

    @requires(ENTITIES_WRITE)
    async def delete(self, actor: Actor, entity_id: str) -> None:
        """DELETE /entities/{id}."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        await self._one(actor, entity_id,
                        lambda cur: Change(delete=bool(ops.require(cur, entity_id))))

    @requires(ENTITIES_WRITE)
    async def append_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap,
                           overwrite: bool = True) -> ops.AttrReport:
        """POST /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        patch = parse_fragment(body, tm, entity_id)
        now = now_iso()

        def fn(cur: Entity | None) -> Change:
            entity, report = ops.append_attrs(cur, entity_id, patch.attrs, now, overwrite,
                                              patch.types)
            return Change(entity, result=report)

        return (await self._one(actor, entity_id, fn)).result

    @requires(ENTITIES_WRITE)
    async def update_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap
                           ) -> ops.AttrReport:
        """PATCH /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        patch = parse_fragment(body, tm, entity_id)
        now = now_iso()

        def fn(cur: Entity | None) -> Change:
            entity, report = ops.update_attrs(cur, entity_id, patch.attrs, now)
            return Change(entity if report.updated else None, result=report)

        report = (await self._one(actor, entity_id, fn)).result
        for hook in self.after_patch if report.updated else ():
            await hook(actor, entity_id, list(report.updated))
        return report

    @requires(ENTITIES_WRITE)
    async def patch_attr(self, actor: Actor, entity_id: str, attr: str, body: Any, tm: TermMap,
                         replace: bool = False) -> None:
        """PATCH (or PUT with replace) /entities/{id}/attrs/{attrId}."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        name = tm.expand(check_name(attr))
        if not isinstance(body, dict):
            raise BadRequestData("the attribute fragment must be a JSON object")
        inst = ops.single_instance(parse_attributes({attr: body}, tm, allow_null=not replace),
                                   name)
        op = ops.replace_attr if replace else ops.patch_attr
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(op(cur, entity_id, name, inst, now)))
        for hook in self.after_patch:
            await hook(actor, entity_id, [name])

    @requires(ENTITIES_WRITE)
    async def delete_attr(self, actor: Actor, entity_id: str, attr: str, tm: TermMap,
                          dataset_id: str | None = None, delete_all: bool = False) -> None:
        """DELETE /entities/{id}/attrs/{attrId}."""
        check_uri(entity_id, "entity id")
        self.policy.check_write(actor, [entity_id])
        name = tm.expand(check_name(attr))
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        now = now_iso()
        await self._one(actor, entity_id, lambda cur: Change(
            ops.delete_attr(cur, entity_id, name, dataset_id, delete_all, now)))

    @requires(ENTITIES_PURGE)
    async def delete_by_type(self, actor: Actor, type_name: str, tm: TermMap) -> int:
        """DELETE /entities?type=T (purge)."""
        await self.require_tenant(actor)
        deleted = await self.store.delete_by_type(actor.tenant, tm.expand(check_name(type_name)))
        if deleted:
            self._wrote(actor.tenant)
        return deleted

    @requires(DISCOVERY)
    async def types(self, actor: Actor) -> list[TypeInfo]:
        """GET /types (the types the caller may read)."""
        await self.require_tenant(actor)
        return self.readable_types(actor, await self.store.types(actor.tenant))

    def readable_types(self, actor: Actor, infos: list[TypeInfo]) -> list[TypeInfo]:
        """The types the caller may read, without the attributes hidden from it."""
        allowed = self.policy.readable_types(actor)
        infos = [i for i in infos if allowed is None or named(i.type, allowed)]
        for info in infos:
            for attr in [a for a in info.attributes if self.policy.hidden(actor, a)]:
                del info.attributes[attr]
        return infos

    @requires(DISCOVERY)
    async def attributes(self, actor: Actor) -> list[AttributeInfo]:
        """GET /attributes (of the types the caller may read)."""
        await self.require_tenant(actor)
        return self.readable_attributes(actor, await self.store.attributes(actor.tenant))

    def readable_attributes(self, actor: Actor, infos: list[AttributeInfo]
                            ) -> list[AttributeInfo]:
        """The attributes the caller may read, of the types it may read."""
        allowed = self.policy.readable_types(actor)
        out = []
        for info in infos:
            if self.policy.hidden(actor, info.name):
                continue
            if allowed is not None:
                info.types = {t for t in info.types if named(t, allowed)}
                if not info.types:
                    continue
            out.append(info)
        return out

    @internal
    async def run_batch(self, actor: Actor, mutations: list[Mutation],
                        errors: list[tuple[str, NgsiError]]) -> BatchResult:
        """Apply prepared mutations in one transaction and collect per-entity results."""
        result = BatchResult(errors=list(errors))
        outcomes: list[MutationOutcome] = []
        if mutations:
            outcomes = await self.store.mutate(actor.tenant, mutations)
            self._wrote(actor.tenant)
        for outcome in outcomes:
            if outcome.error is not None:
                result.errors.append((outcome.entity_id, outcome.error))
            else:
                result.success.append(outcome.entity_id)
                if outcome.change is not None and outcome.change.result == "created":
                    result.created.append(outcome.entity_id)
        return result


def parse_fragment(body: Any, tm: TermMap, entity_id: str, allow_null: bool = False) -> Entity:
    """An entity fragment of a request body for the entity of the URL (validated)."""
    if not isinstance(body, dict):
        raise BadRequestData("the request body must be a JSON object")
    if "id" in body and body["id"] != entity_id:
        raise BadRequestData(f"id {body['id']!r:.100} in the body differs from {entity_id}")
    return parse_entity({**body, "id": entity_id}, tm, require_type=False, allow_null=allow_null)
