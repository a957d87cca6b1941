"""Distributed writes of one entity (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 5.6).

With no registration serving the operation (found without I/O) every write is the local one.
Otherwise the payload is validated first (nothing happens on bad input), then shared out
(`federation_split`): each exclusive, redirect or inclusive source that lists the operation
gets the attributes it covers, in the terms of its @context, by the same HTTP operation at
its endpoint; what is left (nothing proxied) is written here by the local operation. Parts
run concurrently; `Written` says how each went. A PATCH of an attribute an exclusive
registration holds (an actuator's command, registered by its IoT agent) thus reaches the
agent and is not stored here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from urbis.broker.entities import EntityService, parse_fragment
from urbis.broker.federation import Federation, SourceCall, entity_path, own_call
from urbis.broker.federation_client import SourceAnswer
from urbis.broker.federation_outcome import (
    Outcome,
    PartiallyApplied,
    Written,
    source_error,
)
from urbis.context import operations as ops
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.federation import Hop
from urbis.context.federation_split import Part, part_of, split_write
from urbis.context.jsonld import TermMap
from urbis.context.model import ENTITY_KEYS, Entity
from urbis.context.normalize import check_name, check_uri, parse_attributes, parse_entity
from urbis.context.registration import Registration
from urbis.context.render import RenderOptions, render, render_instance
from urbis.security.policy import ENTITIES_WRITE, requires

T = TypeVar("T")
WHOLE = RenderOptions()
ATTRS_ONLY = RenderOptions(keep_id=False, keep_type=False)
Send = Callable[[TermMap, Entity], SourceCall]


class DistributedWrites:
    """Entity writes shared between this broker and its sources."""

    def __init__(self, federation: Federation, entities: EntityService) -> None:
        self.federation = federation
        self.entities = entities

    @requires(ENTITIES_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap, hop: Hop) -> Written[str]:
        """POST /entities."""
        def send(stm: TermMap, part: Entity) -> SourceCall:
            return SourceCall("POST", "/entities", body=render(part, stm, WHOLE))

        return await self._fragment(
            actor, "createEntity", None, body, tm, hop, lambda: parse_entity(body, tm),
            lambda b: self.entities.create(actor, b, tm), send, entity_level=True)

    @requires(ENTITIES_WRITE)
    async def replace(self, actor: Actor, entity_id: str, body: Any, tm: TermMap, hop: Hop
                      ) -> Written[None]:
        """PUT /entities/{id}."""
        check_uri(entity_id, "entity id")
        return await self._fragment(
            actor, "replaceEntity", entity_id, body, tm, hop,
            lambda: parse_entity(body, tm, require_id=False, require_type=False,
                                 entity_id=entity_id),
            lambda b: self.entities.replace(actor, entity_id, b, tm),
            _put(entity_id, WHOLE), entity_level=True)

    @requires(ENTITIES_WRITE)
    async def merge(self, actor: Actor, entity_id: str, body: Any, tm: TermMap, hop: Hop
                    ) -> Written[None]:
        """PATCH /entities/{id}."""
        check_uri(entity_id, "entity id")
        return await self._fragment(
            actor, "mergeEntity", entity_id, body, tm, hop,
            lambda: parse_fragment(body, tm, entity_id, allow_null=True),
            lambda b: self.entities.merge(actor, entity_id, b, tm),
            _send("PATCH", entity_id, WHOLE), entity_level=True)

    @requires(ENTITIES_WRITE)
    async def append_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap,
                           overwrite: bool, hop: Hop) -> Written[ops.AttrReport]:
        """POST /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        params = {} if overwrite else {"options": "noOverwrite"}
        return await self._fragment(
            actor, "appendAttrs", entity_id, body, tm, hop,
            lambda: parse_fragment(body, tm, entity_id),
            lambda b: self.entities.append_attrs(actor, entity_id, b, tm, overwrite),
            _send("POST", entity_id, ATTRS_ONLY, "attrs", params=params), entity_level=False)

    @requires(ENTITIES_WRITE)
    async def update_attrs(self, actor: Actor, entity_id: str, body: Any, tm: TermMap,
                           hop: Hop) -> Written[ops.AttrReport]:
        """PATCH /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        return await self._fragment(
            actor, "updateAttrs", entity_id, body, tm, hop,
            lambda: parse_fragment(body, tm, entity_id),
            lambda b: self.entities.update_attrs(actor, entity_id, b, tm),
            _send("PATCH", entity_id, ATTRS_ONLY, "attrs"), entity_level=False)

    @requires(ENTITIES_WRITE)
    async def patch_attr(self, actor: Actor, entity_id: str, attr: str, body: Any,
                         tm: TermMap, hop: Hop, replace: bool = False) -> Written[None]:
        """PATCH (or PUT with replace) /entities/{id}/attrs/{attr}: an actuator's command
        reaches the source that holds the attribute."""
        check_uri(entity_id, "entity id")
        op = "replaceAttrs" if replace else "updateAttrs"
        regs = await self.federation.sources(actor.tenant, entity_id, None, None, op, hop)
        if not regs:
            await own_call(lambda: self.entities.patch_attr(actor, entity_id, attr, body, tm,
                                                            replace))
            return Written()
        name = tm.expand(check_name(attr))
        if not isinstance(body, dict):
            raise BadRequestData("the attribute fragment must be a JSON object")
        inst = ops.single_instance(
            parse_attributes({attr: body}, tm, allow_null=not replace), name)
        self.entities.policy.check_write(actor, [entity_id])

        def send(stm: TermMap, part: Entity) -> SourceCall:
            return SourceCall("PUT" if replace else "PATCH",
                              entity_path(entity_id, "attrs", stm.compact(name)),
                              body=render_instance(inst, stm, WHOLE))

        fragment = Entity(entity_id, [], {name: [inst]})
        return await self._run(actor, regs, fragment, hop, entity_level=False, send=send,
                               local=lambda keep: self.entities.patch_attr(
                                   actor, entity_id, attr, body, tm, replace))

    @requires(ENTITIES_WRITE)
    async def delete_attr(self, actor: Actor, entity_id: str, attr: str, tm: TermMap,
                          hop: Hop, dataset_id: str | None = None, delete_all: bool = False
                          ) -> Written[None]:
        """DELETE /entities/{id}/attrs/{attr}."""
        check_uri(entity_id, "entity id")
        regs = await self.federation.sources(actor.tenant, entity_id, None, None, "deleteAttrs",
                                             hop)
        if not regs:
            await own_call(lambda: self.entities.delete_attr(actor, entity_id, attr, tm,
                                                             dataset_id, delete_all))
            return Written()
        name = tm.expand(check_name(attr))
        self.entities.policy.check_write(actor, [entity_id])
        params = {k: v for k, v in (("datasetId", dataset_id),
                                    ("deleteAll", "true" if delete_all else None)) if v}

        def send(stm: TermMap, part: Entity) -> SourceCall:
            return SourceCall("DELETE", entity_path(entity_id, "attrs", stm.compact(name)),
                              params)

        written: Written[None] = await self._run(
            actor, regs, Entity(entity_id, [], {name: []}), hop, entity_level=False,
            send=send, local=lambda keep: self.entities.delete_attr(
                actor, entity_id, attr, tm, dataset_id, delete_all))
        return written.settle_missing()

    @requires(ENTITIES_WRITE)
    async def delete(self, actor: Actor, entity_id: str, hop: Hop) -> Written[None]:
        """DELETE /entities/{id}."""
        check_uri(entity_id, "entity id")
        regs = await self.federation.sources(actor.tenant, entity_id, None, None,
                                             "deleteEntity", hop)
        if not regs:
            await own_call(lambda: self.entities.delete(actor, entity_id))
            return Written()
        self.entities.policy.check_write(actor, [entity_id])
        written: Written[None] = await self._run(
            actor, regs, Entity(entity_id, []), hop, entity_level=True, whole=True,
            send=lambda stm, part: SourceCall("DELETE", entity_path(entity_id)),
            local=lambda keep: self.entities.delete(actor, entity_id))
        return written.settle_missing()

    async def _fragment(self, actor: Actor, op: str, entity_id: str | None, body: Any,
                        tm: TermMap, hop: Hop, parse: Callable[[], Entity],
                        local: Callable[[Any], Awaitable[T]], send: Send, *,
                        entity_level: bool) -> Written[T]:
        """A write of an entity fragment: local only, or shared out (see the module)."""
        regs = await self.federation.sources(actor.tenant, entity_id, None, None, op, hop)
        if not regs:
            return Written(await own_call(lambda: local(body)))
        fragment = parse()
        self.entities.policy.check_write(actor, [fragment.id])
        return await self._run(actor, regs, fragment, hop, entity_level=entity_level,
                               send=send, local=lambda keep: local(keep_attrs(body, tm, keep)))

    async def _run(self, actor: Actor, regs: list[Registration], fragment: Entity, hop: Hop, *,
                   entity_level: bool, send: Send,
                   local: Callable[[frozenset[str]], Awaitable[T]], whole: bool = False
                   ) -> Written[T]:
        plan = split_write(None if whole else list(fragment.attrs), regs, fragment.id,
                           fragment.types or None, entity_level=entity_level)
        jobs: list[Awaitable[tuple[Any, Outcome]]] = [
            self._forward(actor.tenant, part, fragment, hop, send) for part in plan.parts]
        if plan.runs_locally(entity_level):
            jobs.insert(0, _local(lambda: local(plan.local_attrs),
                                  None if whole else sorted(plan.local_attrs)))
        results = await asyncio.gather(*jobs)
        written: Written[T] = Written(outcomes=[outcome for _, outcome in results])
        if plan.runs_locally(entity_level):
            written.local = results[0][0]
        return written

    async def _forward(self, tenant: str, part: Part, fragment: Entity, hop: Hop, send: Send
                       ) -> tuple[None, Outcome]:
        piece = part_of(fragment, part.attrs)
        reply = await self.federation.ask(tenant, part.reg, hop, lambda stm: send(stm, piece),
                                          _accepted)
        attrs = None if part.attrs is None else sorted(part.attrs)
        if not reply.ok:
            return None, Outcome(part.reg.id, attrs, source_error(reply))
        if reply.value is not None:
            return None, Outcome(part.reg.id, attrs, reply.value)
        return None, Outcome(part.reg.id, attrs)


async def _local(job: Callable[[], Awaitable[T]], attrs: list[str] | None
                 ) -> tuple[T | None, Outcome]:
    try:
        return await own_call(job), Outcome(None, attrs)
    except NgsiError as err:
        return None, Outcome(None, attrs, err)


def _accepted(answer: SourceAnswer, tm: TermMap) -> NgsiError | None:
    """None for a write the source applied; PartiallyApplied for a 207."""
    if answer.status == 207:
        text = answer.body[:300].decode("utf-8", "replace")
        return PartiallyApplied(f"the source applied part of it only: {text}")
    return None


def keep_attrs(body: Any, tm: TermMap, attrs: frozenset[str]) -> Any:
    """The payload with only the attributes written here (and the entity's own members)."""
    if not isinstance(body, dict):
        return body
    return {k: v for k, v in body.items() if k in ENTITY_KEYS or tm.expand(k) in attrs}


def _send(method: str, entity_id: str, opts: RenderOptions, *rest: str,
          params: dict[str, str] | None = None) -> Send:
    def send(stm: TermMap, part: Entity) -> SourceCall:
        keep = RenderOptions(keep_id=opts.keep_id, keep_type=opts.keep_type and bool(part.types))
        return SourceCall(method, entity_path(entity_id, *rest), params or {},
                          render(part, stm, keep))

    return send


def _put(entity_id: str, opts: RenderOptions) -> Send:
    return _send("PUT", entity_id, opts)
