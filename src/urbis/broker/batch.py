"""Batch entity operations (/entityOperations/create|upsert|update|delete|merge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from urbis.broker.entities import BatchResult, EntityService
from urbis.context import operations as ops
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity, now_iso
from urbis.context.normalize import check_uri, parse_entity
from urbis.context.transfer import keep_sys_attrs, restore
from urbis.security.policy import ENTITIES_WRITE, requires
from urbis.storage.base import Change, Mutation

MAX_BATCH = 10_000
Builder = Callable[[Entity, str], Callable[[Entity | None], Change]]


def _create(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
    return lambda cur: Change(ops.create(cur, entity, now), result="created")


def _upsert_replace(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
    def fn(cur: Entity | None) -> Change:
        if cur is None:
            return Change(ops.create(None, entity, now), result="created")
        return Change(ops.replace(cur, entity, now))

    return fn


def _upsert_update(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
    def fn(cur: Entity | None) -> Change:
        if cur is None:
            return Change(ops.create(None, entity, now), result="created")
        merged, _ = ops.append_attrs(cur, entity.id, entity.attrs, now, True, entity.types)
        return Change(merged)

    return fn


def _restore(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
    return lambda cur: Change(restore(cur, entity, now), result=None if cur else "created")


def _update(overwrite: bool) -> Builder:
    def build(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
        def fn(cur: Entity | None) -> Change:
            merged, report = ops.append_attrs(cur, entity.id, entity.attrs, now, overwrite)
            return Change(merged, result=report)

        return fn

    return build


def _merge(entity: Entity, now: str) -> Callable[[Entity | None], Change]:
    return lambda cur: Change(ops.merge_entity(cur, entity.id, entity, now))


class BatchService:
    """Batch operations: one store transaction per request, a result per entity."""

    def __init__(self, entities: EntityService) -> None:
        self.entities = entities

    @requires(ENTITIES_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap) -> BatchResult:
        """Create each entity; AlreadyExists for those that do."""
        return await self._run(actor, body, tm, _create, require_type=True)

    @requires(ENTITIES_WRITE)
    async def upsert(self, actor: Actor, body: Any, tm: TermMap, update: bool) -> BatchResult:
        """Create or replace (or update with options=update) each entity."""
        return await self._run(actor, body, tm, _upsert_update if update else _upsert_replace,
                               require_type=True)

    @requires(ENTITIES_WRITE)
    async def restore(self, actor: Actor, body: Any, tm: TermMap) -> BatchResult:
        """Create or replace each entity as given, keeping its createdAt / modifiedAt (imports)."""
        return await self._run(actor, body, tm, _restore, require_type=True, sys_attrs=True)

    @requires(ENTITIES_WRITE)
    async def update(self, actor: Actor, body: Any, tm: TermMap, overwrite: bool) -> BatchResult:
        """Append attributes to existing entities (noOverwrite keeps existing ones)."""
        return await self._run(actor, body, tm, _update(overwrite), require_type=False)

    @requires(ENTITIES_WRITE)
    async def merge(self, actor: Actor, body: Any, tm: TermMap) -> BatchResult:
        """Merge-patch each existing entity."""
        return await self._run(actor, body, tm, _merge, require_type=False, allow_null=True)

    @requires(ENTITIES_WRITE)
    async def delete(self, actor: Actor, body: Any) -> BatchResult:
        """Delete each entity by id."""
        ids = batch_items(body)
        mutations: list[Mutation] = []
        errors: list[tuple[str, NgsiError]] = []
        for raw in ids:
            try:
                eid = check_uri(raw, "entity id")
                self.entities.policy.check_write(actor, [eid])
            except NgsiError as err:
                errors.append((str(raw), err))
                continue
            mutations.append(Mutation(eid, _deleter(eid)))
        return await self.entities.run_batch(actor, mutations, errors)

    async def _run(self, actor: Actor, body: Any, tm: TermMap, build: Builder, *,
                   require_type: bool, allow_null: bool = False, sys_attrs: bool = False
                   ) -> BatchResult:
        now = now_iso()
        mutations: list[Mutation] = []
        errors: list[tuple[str, NgsiError]] = []
        for item in batch_items(body):
            try:
                entity = parse_entity(item, tm, require_type=require_type, allow_null=allow_null)
                self.entities.policy.check_write(actor, [entity.id])
                if sys_attrs:
                    keep_sys_attrs(entity, item, tm)
            except NgsiError as err:
                raw_id = item.get("id", "") if isinstance(item, dict) else ""
                errors.append((str(raw_id), err))
                continue
            mutations.append(Mutation(entity.id, build(entity, now)))
        return await self.entities.run_batch(actor, mutations, errors)


def _deleter(eid: str) -> Callable[[Entity | None], Change]:
    return lambda cur: Change(delete=bool(ops.require(cur, eid)))


def batch_items(body: Any) -> list[Any]:
    """The entities (or ids) of a batch request body; BadRequestData unless 1..MAX_BATCH."""
    if not isinstance(body, list):
        raise BadRequestData("a batch operation takes a JSON array")
    if not body:
        raise BadRequestData("a batch operation needs at least one entity")
    if len(body) > MAX_BATCH:
        raise BadRequestData(f"a batch holds at most {MAX_BATCH} entities")
    return body
