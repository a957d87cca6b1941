"""Distributed retrieval and query of entities (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 5.7).

With no registration serving the request (the usual case, found without I/O) these are the
local operations. Otherwise the local data and every matching source are read concurrently:
the local part loses what exclusive and redirect registrations hold (clause 4.3.6.3); each
source's answer keeps only the entities and attributes its registration vouches for; then
the parts are merged (`federation_merge`: most recent instance wins, auxiliary sources only
fill gaps). A source that fails is named in the warnings and the answer goes on without it.

Pages over merged results: with `offset` O and `limit` L the local store and every source are
asked for their first O+L entities in the page's order (orderBy, else id), in pages of at
most `page_size`; the merged list is sorted the same way and O..O+L is returned. The count
is exact when every part gave all it has; otherwise it is the sum of the parts' counts less
the duplicates seen (an upper bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from urbis.broker.entities import EntityService
from urbis.broker.federation import (
    Federated,
    Federation,
    Reply,
    SourceCall,
    entity_path,
    own_call,
)
from urbis.broker.federation_decode import decode_attributes, decode_entity, decode_types
from urbis.broker.federation_discovery import (
    merge_attributes,
    merge_types,
    restrict_attributes,
    restrict_types,
)
from urbis.broker.federation_params import forwarded_attrs
from urbis.broker.federation_query import ID_ORDER, assemble, count_of, fetch_window, proxied_attrs
from urbis.context.actor import Actor
from urbis.context.federation import Hop, SourceWarning, covered_attrs, restrict
from urbis.context.federation_merge import merge_parts, strip
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity
from urbis.context.normalize import check_uri
from urbis.context.query.types import type_names
from urbis.context.registration import AUXILIARY, Registration
from urbis.security.policy import DISCOVERY, ENTITIES_READ, requires
from urbis.storage.base import AttributeInfo, EntityQuery, QueryResult, TypeInfo

RETRIEVE, QUERY = "retrieveEntity", "queryEntity"
TYPES, ATTRIBUTES = "retrieveEntityTypes", "retrieveAttrTypes"


class DistributedReads:
    """GET /entities/{id} and entity queries over this broker and its sources."""

    def __init__(self, federation: Federation, entities: EntityService, page_size: int) -> None:
        self.federation = federation
        self.entities = entities
        self.page_size = page_size

    @requires(ENTITIES_READ)
    async def retrieve(self, actor: Actor, entity_id: str, attrs: Collection[str] | None,
                       hop: Hop) -> Federated[Entity | None]:
        """One entity, merged from here and its sources; None when nobody has it."""
        check_uri(entity_id, "entity id")
        wanted = sorted(attrs) if attrs else None
        regs = await self.federation.sources(actor.tenant, entity_id, None, wanted, RETRIEVE,
                                             hop)
        if not regs:
            return Federated(await own_call(lambda: self.entities.get(actor, entity_id)))

        def build(reg: Registration, tm: TermMap) -> SourceCall:
            return SourceCall("GET", entity_path(entity_id), _attr_params(
                forwarded_attrs(attrs, covered_attrs(reg, entity_id, None)), tm))

        local, replies = await asyncio.gather(
            self.entities.store.get(actor.tenant, entity_id),
            self.federation.ask_all(actor.tenant, regs, hop, build, decode_entity,
                                    missing_ok=True))
        local = strip(local, proxied_attrs(regs, local))
        parts: list[Entity] = []
        aux: list[Entity] = []
        for reply in replies:
            entity = reply.value
            if reply.ok and entity is not None and entity.id == entity_id:
                kept = restrict(entity, reply.reg)
                if kept is not None:
                    (aux if reply.reg.effective_mode == AUXILIARY else parts).append(kept)
        warnings = _warnings(replies)
        merged = merge_parts(local, parts, aux)
        if merged is None or not self.entities.policy.may_read(actor, merged.types, entity_id):
            return Federated(None, warnings)
        return Federated((await self.entities.visible(actor, [merged]))[0], warnings)

    @requires(ENTITIES_READ)
    async def query(self, actor: Actor, query: EntityQuery, hop: Hop,
                    caller: tuple[str, TermMap] | None = None) -> Federated[QueryResult]:
        """A page of entities matching the query, here and at the sources (`caller`: the
        caller's @context URL and term map, for a q the sources' @context cannot express)."""
        types = sorted(type_names(query.type_expr)) if query.type_expr is not None else None
        regs = await self.federation.sources(actor.tenant, None, types, query.attrs, QUERY, hop)
        if not regs:
            return Federated(await own_call(lambda: self.entities.query(actor, query)))
        self.entities.policy.check_query(actor, types)
        order = list(query.order_by) or ID_ORDER
        window = query.offset + query.limit
        local_query = replace(query, offset=0, limit=window, order_by=order)
        local, windows = await asyncio.gather(
            self.entities.store.query(actor.tenant, local_query),
            asyncio.gather(*(fetch_window(self.federation, actor.tenant, reg, local_query,
                                          types, hop, self.page_size, caller)
                             for reg in regs)))
        lazy = self.entities.policy.readable_types(actor) is None  # no entity is filtered out
        got = assemble(local.entities, windows, order, query.offset, query.limit, lazy)
        visible = [e for e in got.entities
                   if self.entities.policy.may_read(actor, e.types, e.id)]
        total = got.total if got.paged else len(visible)
        page = await self.entities.visible(
            actor, visible if got.paged else visible[query.offset:window])
        count = count_of(len(local.entities), local.count, window, windows,
                         total) if query.count else None
        return Federated(QueryResult(page, count), got.warnings)

    @requires(DISCOVERY)
    async def types(self, actor: Actor, hop: Hop) -> Federated[list[TypeInfo]]:
        """GET /types: the entity types here and at the sources."""
        regs = await self.federation.sources(actor.tenant, None, None, None, TYPES, hop)
        if not regs:
            return Federated(await own_call(lambda: self.entities.types(actor)))
        local, replies = await asyncio.gather(
            self.entities.store.types(actor.tenant),
            self.federation.ask_all(actor.tenant, regs, hop, _details("/types"), decode_types))
        remote = [restrict_types(r.value, r.reg) for r in replies if r.ok]
        merged = merge_types([local, *remote])
        return Federated(self.entities.readable_types(actor, merged), _warnings(replies))

    @requires(DISCOVERY)
    async def attributes(self, actor: Actor, hop: Hop) -> Federated[list[AttributeInfo]]:
        """GET /attributes: the attributes here and at the sources."""
        regs = await self.federation.sources(actor.tenant, None, None, None, ATTRIBUTES, hop)
        if not regs:
            return Federated(await own_call(lambda: self.entities.attributes(actor)))
        local, replies = await asyncio.gather(
            self.entities.store.attributes(actor.tenant),
            self.federation.ask_all(actor.tenant, regs, hop, _details("/attributes"),
                                    decode_attributes))
        remote = [restrict_attributes(r.value, r.reg) for r in replies if r.ok]
        merged = merge_attributes([local, *remote])
        return Federated(self.entities.readable_attributes(actor, merged), _warnings(replies))


def _details(path: str) -> Callable[[Registration, TermMap], SourceCall]:
    return lambda reg, tm: SourceCall("GET", path, {"details": "true"})


def _warnings(replies: Sequence[Reply]) -> list[SourceWarning]:
    return [r.warning for r in replies if r.warning is not None]


def _attr_params(attrs: frozenset[str] | None, tm: TermMap) -> dict[str, str]:
    params = {"options": "sysAttrs"}
    if attrs:
        params["attrs"] = ",".join(sorted(tm.compact(a) for a in attrs))
    return params
