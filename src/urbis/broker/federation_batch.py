"""Distributed batch operations (/entityOperations/create|upsert|update|merge|delete).

With no registration serving the batch operation, the local batch. Otherwise each entity is
validated and shared out like a single write (`federation_split`); the local parts run as
one local batch, and each source receives one batch of its parts (the same operation and
options at its endpoint), all concurrently. An entity succeeds when each of its parts did; a
failed part puts the entity among the errors, its problem naming the registration. For
deletes, a part that did not have the entity is no failure when another part had it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from urbis.broker.batch import BatchService, batch_items
from urbis.broker.entities import BatchResult
from urbis.broker.federation import Federation, SourceCall, json_of, own_call
from urbis.broker.federation_client import SourceAnswer
from urbis.broker.federation_outcome import problem_error, source_error
from urbis.broker.federation_write import keep_attrs
from urbis.context.actor import Actor
from urbis.context.errors import NgsiError, ResourceNotFound
from urbis.context.federation import Hop
from urbis.context.federation_split import part_of, split_write
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity
from urbis.context.normalize import check_uri, parse_entity
from urbis.context.registration import Registration
from urbis.context.render import RenderOptions, render
from urbis.security.policy import ENTITIES_WRITE, requires

Local = Callable[[list[Any]], Awaitable[BatchResult]]


@dataclass(slots=True)
class _Plan:
    """The local items, and per source its registration and the entities (or ids) it gets."""

    local: list[Any] = field(default_factory=list)
    remote: dict[str, tuple[Registration, list[Any]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # entity ids in request order

    def send(self, reg: Registration, item: Any) -> None:
        self.remote.setdefault(reg.id, (reg, []))[1].append(item)


class DistributedBatch:
    """Batch entity operations shared between this broker and its sources."""

    def __init__(self, federation: Federation, batch: BatchService) -> None:
        self.federation = federation
        self.batch = batch

    @requires(ENTITIES_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap, hop: Hop) -> BatchResult:
        """POST /entityOperations/create."""
        return await self._fragments(actor, "createBatch", "create", {}, body, tm, hop,
                                     lambda b: self.batch.create(actor, b, tm), True)

    @requires(ENTITIES_WRITE)
    async def upsert(self, actor: Actor, body: Any, tm: TermMap, update: bool, hop: Hop
                     ) -> BatchResult:
        """POST /entityOperations/upsert."""
        return await self._fragments(
            actor, "upsertBatch", "upsert", {"options": "update" if update else "replace"},
            body, tm, hop, lambda b: self.batch.upsert(actor, b, tm, update), True)

    @requires(ENTITIES_WRITE)
    async def update(self, actor: Actor, body: Any, tm: TermMap, overwrite: bool, hop: Hop
                     ) -> BatchResult:
        """POST /entityOperations/update."""
        return await self._fragments(
            actor, "updateBatch", "update", {} if overwrite else {"options": "noOverwrite"},
            body, tm, hop, lambda b: self.batch.update(actor, b, tm, overwrite), False)

    @requires(ENTITIES_WRITE)
    async def merge(self, actor: Actor, body: Any, tm: TermMap, hop: Hop) -> BatchResult:
        """POST /entityOperations/merge."""
        return await self._fragments(actor, "mergeBatch", "merge", {}, body, tm, hop,
                                     lambda b: self.batch.merge(actor, b, tm), True,
                                     allow_null=True)

    @requires(ENTITIES_WRITE)
    async def delete(self, actor: Actor, body: Any, hop: Hop) -> BatchResult:
        """POST /entityOperations/delete."""
        regs = await self.federation.sources(actor.tenant, None, None, None, "deleteBatch", hop)
        if not regs:
            return await own_call(lambda: self.batch.delete(actor, body))
        plan = _Plan()
        for raw in batch_items(body):
            try:
                eid = check_uri(raw, "entity id")
                self.batch.entities.policy.check_write(actor, [eid])
            except NgsiError:
                plan.local.append(raw)  # the local batch reports it
                continue
            split = split_write(None, regs, eid, None, entity_level=True)
            if split.local_entity:
                plan.local.append(eid)
            for part in split.parts:
                plan.send(part.reg, eid)
            plan.order.append(eid)
        return await self._execute(actor, plan, "delete", {}, hop,
                                   lambda b: self.batch.delete(actor, b), deletes=True)

    async def _fragments(self, actor: Actor, op: str, path: str, params: dict[str, str],
                         body: Any, tm: TermMap, hop: Hop, local: Local, entity_level: bool,
                         allow_null: bool = False) -> BatchResult:
        regs = await self.federation.sources(actor.tenant, None, None, None, op, hop)
        if not regs:
            return await own_call(lambda: local(body))
        plan = _Plan()
        for item in batch_items(body):
            try:
                entity = parse_entity(item, tm, require_type=op in ("createBatch", "upsertBatch"),
                                      allow_null=allow_null)
                self.batch.entities.policy.check_write(actor, [entity.id])
            except NgsiError:
                plan.local.append(item)  # the local batch reports it
                continue
            split = split_write(list(entity.attrs), regs, entity.id, entity.types or None,
                                entity_level=entity_level)
            if split.runs_locally(entity_level):
                plan.local.append(keep_attrs(item, tm, split.local_attrs))
            for part in split.parts:
                plan.send(part.reg, part_of(entity, part.attrs))
            plan.order.append(entity.id)
        return await self._execute(actor, plan, path, params, hop, local)

    async def _execute(self, actor: Actor, plan: _Plan, path: str, params: dict[str, str],
                       hop: Hop, local: Local, deletes: bool = False) -> BatchResult:
        async def no_local() -> BatchResult:
            return BatchResult()

        jobs = [self._remote(actor.tenant, reg, items, path, params, hop)
                for reg, items in plan.remote.values()]
        here, *there = await asyncio.gather(
            own_call(lambda: local(plan.local)) if plan.local else no_local(), *jobs)
        return _combine(plan.order, here, there, deletes)

    async def _remote(self, tenant: str, reg: Registration, items: list[Any], path: str,
                      params: dict[str, str], hop: Hop) -> BatchResult:
        ids = [i if isinstance(i, str) else i.id for i in items]

        def build(stm: TermMap) -> SourceCall:
            body = [i if isinstance(i, str) else _render(i, stm) for i in items]
            return SourceCall("POST", f"/entityOperations/{path}", params, body)

        reply = await self.federation.ask(tenant, reg, hop, build, _batch_answer)
        if not reply.ok:
            err = source_error(reply)
            return BatchResult(errors=[(eid, err) for eid in ids])
        created, errors = reply.value
        failed = {eid for eid, _ in errors}
        return BatchResult([i for i in ids if i not in failed],
                           [(eid, _named(err, reg)) for eid, err in errors],
                           [i for i in ids if i in created])


def _render(entity: Entity, tm: TermMap) -> dict[str, Any]:
    return render(entity, tm, RenderOptions(keep_type=bool(entity.types)))


def _named(err: NgsiError, reg: Registration) -> NgsiError:
    err.extra["registrationId"] = reg.id
    err.detail = err.detail.replace("context source :", f"context source {reg.id}:", 1)
    return err


def _batch_answer(answer: SourceAnswer, tm: TermMap
                  ) -> tuple[set[str], list[tuple[str, NgsiError]]]:
    """(created ids, per-entity errors) of a source's batch answer (201, 204 or 207)."""
    if answer.status == 204 or not answer.body:
        return set(), []
    body = json_of(answer)
    if isinstance(body, list):
        return {str(i) for i in body}, []
    if not isinstance(body, dict) or not isinstance(body.get("errors", []), list):
        raise ValueError("a batch answer is neither a list of ids nor a BatchOperationResult")
    errors = []
    for item in body.get("errors", []):
        if not isinstance(item, dict) or not isinstance(item.get("error"), dict):
            raise ValueError("a batch error is not {entityId, error}")
        problem = item["error"]
        status = problem.get("status")
        errors.append((str(item.get("entityId", "")), problem_error(
            problem, status if isinstance(status, int) else 500, "")))
    return set(), errors


def _combine(order: Sequence[str], here: BatchResult, there: Sequence[BatchResult],
             deletes: bool) -> BatchResult:
    """One result: an entity succeeds when each of its parts did (see the module)."""
    ok: set[str] = set(here.success)
    errors: dict[str, NgsiError] = {}
    for result in (here, *there):
        ok.update(result.success)
        for eid, err in result.errors:
            errors.setdefault(eid, err)
    if deletes:
        errors = {eid: err for eid, err in errors.items()
                  if not (isinstance(err, ResourceNotFound) and eid in ok)}
    created = {eid for r in (here, *there) for eid in r.created}
    out = BatchResult(errors=[(eid, err) for eid, err in errors.items()])
    for eid in dict.fromkeys([*order, *here.success]):
        if eid in ok and eid not in errors:
            out.success.append(eid)
            if eid in created:
                out.created.append(eid)
    return out
