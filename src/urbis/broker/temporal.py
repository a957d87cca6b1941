"""Temporal services: the temporal evolution of entities (ETSI GS CIM 009 clauses 5.6.11-5.6.18,
5.7.3-5.7.4), for one caller, over a TemporalStore; and the retention of histories."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from urbis.broker.entities import EntityService
from urbis.broker.queries import Paging
from urbis.broker.temporal_params import TemporalRequest, temporal_request
from urbis.broker.temporal_render import render_temporal
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, ResourceNotFound
from urbis.context.jsonld import DEFAULT_VOCAB, TermMap
from urbis.context.model import now_iso
from urbis.context.normalize import check_name, check_uri
from urbis.context.query.types import type_names
from urbis.context.temporal import (
    TimeFilter,
    from_micros,
    instance_key,
    parse_retention,
    to_micros,
)
from urbis.context.temporal_parse import parse_instance_fragment, parse_temporal_entity
from urbis.security.policy import TEMPORAL_READ, TEMPORAL_WRITE, internal, requires
from urbis.storage.base import EntityQuery
from urbis.storage.temporal_base import Retention, TemporalEntity, TemporalQuery, TemporalStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TemporalResult:
    """Rendered entity histories, the count when asked, and the time range when truncated."""

    items: list[dict[str, Any]]
    count: int | None
    truncated: tuple[str, str] | None
    request: TemporalRequest


def retention_of(text: str) -> Retention:
    """The Retention a setting describes; type names without a colon are default-context
    terms (`Vehicle` is `https://uri.etsi.org/ngsi-ld/default-context/Vehicle`)."""
    default, by_type = parse_retention(text)
    return Retention(default, {(t if ":" in t else DEFAULT_VOCAB + t): p
                               for t, p in by_type.items()})


SETTLE_BATCH = 64  # journaled write batches per settle step


class TemporalService:
    """Read and write entity histories; the only way adapters reach the TemporalStore."""

    def __init__(self, store: TemporalStore, entities: EntityService, paging: Paging, *,
                 instance_limit: int = 1000, retention: Retention | None = None,
                 purge_interval: float = 3600.0, settle_interval: float = 0.05) -> None:
        self.store = store
        self.entities = entities
        self.paging = paging
        self.instance_limit = instance_limit
        self.retention = retention
        self.purge_interval = purge_interval
        self.settle_interval = settle_interval
        self._task: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start settling journaled changes into histories, and the periodic retention purge
        (when a retention is set)."""
        loop = asyncio.get_running_loop()
        if self._settler is None:
            self._settler = loop.create_task(self._settle_loop())
        if self.retention is not None and self._task is None:
            self._task = loop.create_task(self._purge_loop())

    @internal
    async def close(self) -> None:
        """Stop the background tasks (what is still pending is settled at the next start,
        or before the next temporal request)."""
        tasks, self._task, self._settler = (self._task, self._settler), None, None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _settle_loop(self) -> None:
        while True:
            done = 0
            try:
                done = await self.store.settle(SETTLE_BATCH)
            except Exception:
                log.exception("writing journaled changes into histories failed; trying again")
            # a full step: more is waiting, go on at once (writes still run in between); else
            # wait, so that the next step writes many changes at once (a step also stops at
            # ~2,000 entity changes: 40,000 a second at this interval, more than the writes)
            await asyncio.sleep(0 if done >= SETTLE_BATCH else self.settle_interval)

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("history retention purge failed; trying again later")
            await asyncio.sleep(self.purge_interval)

    @internal
    async def purge(self, batch: int = 5000) -> int:
        """Delete every instance older than its retention, `batch` at a time; how many."""
        assert self.retention is not None
        total = 0
        while True:
            now = to_micros(now_iso())
            done = await self.store.expire(self.retention, now, batch)
            total += done
            if done < batch:
                return total
            await asyncio.sleep(0)  # let requests in between batches

    @requires(TEMPORAL_WRITE)
    async def create_or_update(self, actor: Actor, body: Any, tm: TermMap) -> tuple[str, bool]:
        """POST /temporal/entities: (entity id, whether its history is new)."""
        now = now_iso()
        entity, records = parse_temporal_entity(body, tm, to_micros(now))
        self.entities.policy.check_write(actor, [entity.id])
        current = await self._find(actor, entity.id)
        if current is not None:  # an update: the history keeps its types and scopes too
            entity.types = list(dict.fromkeys([*current.types, *entity.types]))
            entity.scopes = entity.scopes or current.scopes
            entity.created_at = current.created_at
        return entity.id, await self.store.add(actor.tenant, entity, records, now)

    @requires(TEMPORAL_WRITE)
    async def append_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap) -> None:
        """POST /temporal/entities/{id}/attrs: add instances to an existing history."""
        check_uri(entity_id, "entity id")
        self.entities.policy.check_write(actor, [entity_id])
        now = now_iso()
        if not isinstance(body, dict):
            raise BadRequestData("the request body must be a JSON object")
        entity, records = parse_temporal_entity({**body, "id": entity_id}, tm, to_micros(now),
                                                entity_id=entity_id, require_type=False)
        current = await self._existing(actor, entity_id)
        entity.types = list(dict.fromkeys([*current.types, *entity.types]))
        entity.scopes = entity.scopes or current.scopes
        entity.created_at = current.created_at
        await self.store.add(actor.tenant, entity, records, now)

    async def _find(self, actor: Actor, entity_id: str) -> TemporalEntity | None:
        query = TemporalQuery(EntityQuery(ids=[entity_id], limit=1), TimeFilter(last_n=1), 1)
        page = await self.store.query(actor.tenant, query)
        return page.entities[0] if page.entities else None

    async def _existing(self, actor: Actor, entity_id: str) -> TemporalEntity:
        found = await self._find(actor, entity_id)
        if found is None:
            raise ResourceNotFound(f"no temporal entity {entity_id}")
        return found

    @requires(TEMPORAL_READ)
    async def retrieve(self, actor: Actor, entity_id: str, params: Mapping[str, Any],
                       tm: TermMap) -> TemporalResult:
        """GET /temporal/entities/{id}."""
        check_uri(entity_id, "entity id")
        request = temporal_request(params, tm, self.paging, self.instance_limit, entity_id)
        result = await self._run(actor, request, tm)
        if not result.items:
            raise ResourceNotFound(f"no temporal entity {entity_id}")
        return result

    @requires(TEMPORAL_READ)
    async def query(self, actor: Actor, params: Mapping[str, Any], tm: TermMap
                    ) -> TemporalResult:
        """GET /temporal/entities and POST /temporal/entityOperations/query."""
        request = temporal_request(params, tm, self.paging, self.instance_limit)
        type_expr = request.query.entities.type_expr
        self.entities.policy.check_query(actor, type_names(type_expr) if type_expr else None)
        return await self._run(actor, request, tm)

    async def _run(self, actor: Actor, request: TemporalRequest, tm: TermMap) -> TemporalResult:
        page = await self.store.query(actor.tenant, request.query)
        if not page.entities:  # a tenant may have histories only (temporal API writes)
            await self.entities.require_tenant(actor)
        policy = self.entities.policy
        visible = [e for e in page.entities if policy.may_read(actor, e.types, e.id)]
        for entity in visible:  # attributes the caller may not see are left out
            for attr in [a for a in {*entity.instances, *entity.aggregates}
                         if policy.hidden(actor, a)]:
                entity.instances.pop(attr, None)
                entity.aggregates.pop(attr, None)
        items = [render_temporal(e, tm, request.format, request.sys_attrs) for e in visible]
        truncated = None
        if page.truncated is not None:
            truncated = (from_micros(page.truncated[0]), from_micros(page.truncated[1]))
        return TemporalResult(items, page.count, truncated, request)

    @requires(TEMPORAL_WRITE)
    async def delete(self, actor: Actor, entity_id: str) -> None:
        """DELETE /temporal/entities/{id}."""
        check_uri(entity_id, "entity id")
        self.entities.policy.check_write(actor, [entity_id])
        if not await self.store.delete_entity(actor.tenant, entity_id):
            raise ResourceNotFound(f"no temporal entity {entity_id}")

    @requires(TEMPORAL_WRITE)
    async def delete_attr(self, actor: Actor, entity_id: str, attr: str, tm: TermMap,
                          dataset_id: str | None = None, delete_all: bool = False) -> None:
        """DELETE /temporal/entities/{id}/attrs/{attrId}."""
        check_uri(entity_id, "entity id")
        self.entities.policy.check_write(actor, [entity_id])
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        name = tm.expand(check_name(attr))
        if not await self.store.delete_attr(actor.tenant, entity_id, name, dataset_id,
                                            delete_all):
            raise ResourceNotFound(f"no attribute {attr} in temporal entity {entity_id}")

    @requires(TEMPORAL_WRITE)
    async def modify_instance(self, actor: Actor, entity_id: str, attr: str, instance: str,
                              body: Any, tm: TermMap) -> None:
        """PATCH /temporal/entities/{id}/attrs/{attrId}/{instanceId}."""
        check_uri(entity_id, "entity id")
        self.entities.policy.check_write(actor, [entity_id])
        name = tm.expand(check_name(attr))
        key = self._key(instance)
        inst = parse_instance_fragment(attr, name, body, tm)
        if not await self.store.modify_instance(actor.tenant, entity_id, name, key, inst,
                                                now_iso()):
            raise ResourceNotFound(f"no instance {instance} of {attr} in {entity_id}")

    @requires(TEMPORAL_WRITE)
    async def delete_instance(self, actor: Actor, entity_id: str, attr: str, instance: str,
                              tm: TermMap) -> None:
        """DELETE /temporal/entities/{id}/attrs/{attrId}/{instanceId}."""
        check_uri(entity_id, "entity id")
        self.entities.policy.check_write(actor, [entity_id])
        name = tm.expand(check_name(attr))
        if not await self.store.delete_instance(actor.tenant, entity_id, name,
                                                self._key(instance)):
            raise ResourceNotFound(f"no instance {instance} of {attr} in {entity_id}")

    @staticmethod
    def _key(instance: str) -> int:
        check_uri(instance, "instanceId")
        key = instance_key(instance)
        if key is None:
            raise ResourceNotFound(f"no attribute instance {instance}")
        return key
