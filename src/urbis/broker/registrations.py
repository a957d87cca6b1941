"""Context source registration services (ETSI GS CIM 009 V1.8.1 clauses 5.9 and 5.10).

Terms are expanded with the caller's @context and stored expanded, with the URL of that
@context (an ImplicitlyCreated one for an inline context, as for subscriptions). Besides the
checks of the payload (`registration_parse`) and the conflicts between registrations (made by
the store in the write's transaction), a proxied registration may not cover local data
(V1.9.1 clause 5.9.2.4): an exclusive one no existing attribute of its entities, a redirect
one no existing entity. `matching` is what distributed operations ask (no caller: the
operation asking has been authorised already).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from urbis.broker.contexts import ContextService
from urbis.broker.queries import Paging
from urbis.broker.registration_index import RegistrationIndex
from urbis.broker.registration_query import registration_query
from urbis.context.actor import Actor
from urbis.context.errors import AlreadyExists, Conflict, NonexistentTenant, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.context.model import now_iso
from urbis.context.normalize import check_uri
from urbis.context.query.types import TypeName, TypeNode, TypeOr
from urbis.context.registration import EXCLUSIVE, REDIRECT, EntityInfo, Registration
from urbis.context.registration_parse import parse_registration, patch_registration
from urbis.security.policy import (
    REGISTRATIONS_READ,
    REGISTRATIONS_WRITE,
    internal,
    requires,
)
from urbis.storage.base import EntityQuery, EntityStore
from urbis.storage.registrations_base import RegistrationPage, RegistrationStore, SourceTally

ID_PREFIX = "urn:ngsi-ld:ContextSourceRegistration:"


class RegistrationService:
    """The only way adapters reach registrations; every operation takes the caller."""

    def __init__(self, store: RegistrationStore, entities: EntityStore,
                 contexts: ContextService, paging: Paging, index: RegistrationIndex) -> None:
        self.store = store
        self.entities = entities
        self.contexts = contexts
        self.paging = paging
        self.index = index
        self.after_write: list[Callable[[], None]] = []  # e.g. wake the csource notifier

    @internal
    async def require_tenant(self, actor: Actor) -> None:
        """NonexistentTenant when a named tenant has never been written to."""
        if not actor.is_default_tenant and not await self.store.tenant_exists(actor.tenant):
            raise NonexistentTenant(f"tenant {actor.tenant} does not exist")

    @requires(REGISTRATIONS_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap, raw_context: Any = None
                     ) -> str:
        """POST /csourceRegistrations: validate, store, and return the (maybe generated) id."""
        now = now_iso()
        reg = parse_registration(body, tm, now, ID_PREFIX + str(uuid.uuid4()))
        if await self.store.get(actor.tenant, reg.id) is not None:
            raise AlreadyExists(f"registration {reg.id} already exists")
        await self._check_local_data(actor.tenant, reg)
        implicit = await self._context_of(reg, raw_context)
        try:
            with self.index.writing(actor.tenant):
                await self.store.create(actor.tenant, reg, now)
        except Exception:
            if implicit is not None:
                await self.contexts.delete(Actor(), implicit)
            raise
        self._changed()
        return reg.id

    @requires(REGISTRATIONS_READ)
    async def get(self, actor: Actor, registration_id: str) -> Registration:
        """GET /csourceRegistrations/{id}."""
        check_uri(registration_id, "registration id")
        await self.require_tenant(actor)
        reg = await self.store.get(actor.tenant, registration_id)
        if reg is None:
            raise ResourceNotFound(f"registration {registration_id} not found")
        return reg

    @requires(REGISTRATIONS_READ)
    async def query(self, actor: Actor, params: Mapping[str, Any], tm: TermMap
                    ) -> RegistrationPage:
        """GET /csourceRegistrations: the registrations a discovery query selects, a page."""
        query = registration_query(params, tm, self.paging)
        await self.require_tenant(actor)
        return await self.store.query(actor.tenant, query)

    @requires(REGISTRATIONS_WRITE)
    async def update(self, actor: Actor, registration_id: str, body: Any, tm: TermMap) -> None:
        """PATCH /csourceRegistrations/{id}: merge a fragment; nothing changes if refused."""
        check_uri(registration_id, "registration id")
        now = now_iso()
        probe = await self.store.get(actor.tenant, registration_id)
        if probe is None:
            raise ResourceNotFound(f"registration {registration_id} not found")
        await self._check_local_data(actor.tenant, patch_registration(probe, body, tm, now))
        with self.index.writing(actor.tenant):
            await self.store.update(actor.tenant, registration_id,
                                    lambda current: patch_registration(current, body, tm, now),
                                    now)
        self._changed()

    @requires(REGISTRATIONS_WRITE)
    async def delete(self, actor: Actor, registration_id: str) -> None:
        """DELETE /csourceRegistrations/{id}."""
        check_uri(registration_id, "registration id")
        with self.index.writing(actor.tenant):
            deleted = await self.store.delete(actor.tenant, registration_id)
        if not deleted:
            raise ResourceNotFound(f"registration {registration_id} not found")
        self._changed()

    @internal
    async def matching(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                       attrs: Sequence[str] | None, operation: str) -> list[Registration]:
        """Live registrations that serve `operation` on such an entity (distributed ops).

        `types` and `attrs` are expanded IRIs; None (or empty) restricts nothing; `entity_id`
        None stands for a query. Cached per tenant (`RegistrationIndex`).
        """
        return await self.index.matching(tenant, entity_id, types, attrs, operation, now_iso())

    @internal
    async def record_outcomes(self, tallies: Sequence[SourceTally]) -> None:
        """Count distributed operations sent to sources (status, timesSent ...)."""
        await self.store.record_outcomes(tallies)

    async def _context_of(self, reg: Registration, raw_context: Any) -> str | None:
        """Name the request's @context by a URL; the id of an implicit one stored for it."""
        if isinstance(raw_context, list) and len(raw_context) == 1:
            raw_context = raw_context[0]
        if isinstance(raw_context, str):
            reg.context = raw_context
        elif raw_context is not None:
            implicit = await self.contexts.add_implicit(raw_context)
            reg.context = implicit.url
            return implicit.id
        return None

    async def _check_local_data(self, tenant: str, reg: Registration) -> None:
        """Conflict when a proxied registration covers data held here (clause 5.9.2.4)."""
        mode = reg.effective_mode
        if mode == EXCLUSIVE:
            for info in reg.information:
                for entity in info.entities or ():
                    found = await self.entities.get(tenant, entity.id or "")
                    shared = set(found.attrs) & set(info.attrs or ()) if found else set()
                    if shared:
                        raise Conflict(f"entity {entity.id} already has attributes the "
                                       "exclusive registration names")
        elif mode == REDIRECT:
            for info in reg.information:
                for query in _queries(info.entities, info.attrs):
                    if (await self.entities.query(tenant, query)).entities:
                        raise Conflict("entities the redirect registration covers exist "
                                       "already")

    def _changed(self) -> None:
        for hook in self.after_write:
            hook()


def _queries(entities: list[EntityInfo] | None, attrs: list[str] | None) -> list[EntityQuery]:
    """Entity queries (limit 1) for what an information item covers."""
    if entities is None:
        return [EntityQuery(attrs=attrs, limit=1)] if attrs else []
    return [EntityQuery(ids=[e.id] if e.id else None, id_pattern=e.id_pattern,
                        type_expr=_type_expr(e.types), attrs=attrs, limit=1) for e in entities]


def _type_expr(types: list[str]) -> TypeNode:
    names = tuple(TypeName(t) for t in types)
    return names[0] if len(names) == 1 else TypeOr(names)
