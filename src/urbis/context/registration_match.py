"""Which registrations an operation, a discovery query or a registration subscription concerns.

Three questions, one set of rules (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 5.10, 5.11, 5.12):

- `serves`: may this source take part in an operation on an entity (or a query) of these
  types and attributes? An information item serves when one of its entities fits (types
  shared; the id equal, or matched by its idPattern, or any id when it names neither) and it
  shares an attribute (an item naming no attributes has them all). Unknown types or
  attributes (None) restrict nothing. Expired registrations serve nothing.
- `RegistrationFilter.matches`: does a registration answer a discovery query or a
  subscription to registrations (entities, attributes, `q` and `csf` over its properties,
  a geo-query on its location, scopeQ)?
- `conflicts`: may two registrations not coexist (an exclusive one overlapping another
  exclusive or a redirect one, clause 4.3.6.3)?
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from typing import Any

from urbis.context.geo import GeoQuery, entity_matches
from urbis.context.jsonld import core_term_map
from urbis.context.model import ATTRIBUTE_TYPES, GEO_PROPERTY, PROPERTY, VALUE_KEYS, Entity
from urbis.context.query.evaluate import q_matches, scope_matches, types_match
from urbis.context.query.q import compile_regex
from urbis.context.query.q_ast import QNode
from urbis.context.query.scope import ScopeNode, parse_scope_q
from urbis.context.query.types import TypeNode
from urbis.context.registration import (
    EXCLUSIVE,
    PROXIED,
    REGISTRATION,
    EntityInfo,
    Registration,
    RegistrationInfo,
)
from urbis.context.subscription import Subscription

NEWLY_MATCHING, UPDATED, NO_LONGER_MATCHING = "newlyMatching", "updated", "noLongerMatching"


# --- distributed operations ---------------------------------------------------------------


def entity_fits(entity: EntityInfo, entity_id: str | None, types: Collection[str] | None
                ) -> bool:
    """Whether an EntityInfo covers an entity of this id and these types (None: unknown)."""
    if types and not any(t in types for t in entity.types):
        return False
    if entity_id is None:
        return True
    if entity.id is not None:
        return entity.id == entity_id
    return entity.id_pattern is None or bool(compile_regex(entity.id_pattern).search(entity_id))


def info_serves(info: RegistrationInfo, entity_id: str | None, types: Collection[str] | None,
                attrs: Collection[str] | None) -> bool:
    """Whether one information item covers the entity and one of the attributes."""
    if info.entities is not None and not any(entity_fits(e, entity_id, types)
                                             for e in info.entities):
        return False
    names = info.attrs
    return not attrs or names is None or any(a in attrs for a in names)


def serves(reg: Registration, entity_id: str | None, types: Collection[str] | None,
           attrs: Collection[str] | None, operation: str, now: str) -> bool:
    """Whether the source may take part in `operation` on such an entity (or query)."""
    return (reg.supports(operation) and not reg.expired(now)
            and any(info_serves(i, entity_id, types, attrs) for i in reg.information))


def conflicts(new: Registration, old: Registration, now: str) -> bool:
    """Whether `new` may not be created while `old` exists (clause 4.3.6.3)."""
    modes = {new.effective_mode, old.effective_mode}
    if EXCLUSIVE not in modes or not modes <= set(PROXIED) or old.expired(now):
        return False
    exclusive, other = (new, old) if new.effective_mode == EXCLUSIVE else (old, new)
    return any(info_serves(theirs, entity.id, entity.types, info.attrs)
               for info in exclusive.information for entity in info.entities or ()
               for theirs in other.information)


# --- discovery and subscriptions ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selector:
    """One entity selection of a query or subscription: a type selection, ids or idPattern."""

    types: TypeNode | None = None
    ids: tuple[str, ...] = ()
    id_pattern: str | None = None

    def fits(self, entity: EntityInfo) -> bool:
        """Whether the EntityInfo may provide entities this selection selects."""
        if self.types is not None and not types_match(self.types, entity.types):
            return False
        if self.ids:
            if entity.id is not None:
                return entity.id in self.ids
            return entity.id_pattern is None or any(
                compile_regex(entity.id_pattern).search(i) for i in self.ids)
        if self.id_pattern is not None and entity.id is not None:
            return bool(compile_regex(self.id_pattern).search(entity.id))
        return True  # a pattern against a pattern, or no id restriction: they may overlap


@dataclass(frozen=True, slots=True)
class RegistrationFilter:
    """A discovery query or a subscription to registrations, terms expanded."""

    selectors: tuple[Selector, ...] = ()
    attrs: frozenset[str] = frozenset()
    q: QNode | None = None
    csf: QNode | None = None
    geo: GeoQuery | None = None
    scope: ScopeNode | None = None

    def matches(self, reg: Registration) -> bool:
        """Whether the registration satisfies every part of the filter."""
        if not any(self._info_matches(info) for info in reg.information):
            return False
        if self.q is None and self.csf is None and self.geo is None and self.scope is None:
            return True
        props = properties_entity(reg)
        return ((self.q is None or q_matches(self.q, props))
                and (self.csf is None or q_matches(self.csf, props))
                and (self.geo is None or entity_matches(self.geo, props))
                and (self.scope is None or scope_matches(self.scope, props.scopes)))

    def _info_matches(self, info: RegistrationInfo) -> bool:
        if self.selectors and info.entities is not None and not any(
                s.fits(e) for s in self.selectors for e in info.entities):
            return False
        names = info.attrs
        return not self.attrs or names is None or any(a in self.attrs for a in names)


def subscription_filter(sub: Subscription, csf: QNode | None = None) -> RegistrationFilter:
    """The filter of a subscription to registrations (`csf` parsed by the caller)."""
    selectors = tuple(Selector(s.type, (s.id,) if s.id else (), s.id_pattern)
                      for s in sub.entities)
    return RegistrationFilter(selectors, frozenset(sub.watched or ()), sub.q, csf,
                              sub.geo_query(),
                              None if sub.scope_q is None else parse_scope_q(sub.scope_q))


def change_reason(flt: RegistrationFilter, before: Registration | None,
                  after: Registration | None, now: str) -> tuple[str, Registration] | None:
    """(triggerReason, registration to send) for a registration change, or None."""
    was = before is not None and not before.expired(now) and flt.matches(before)
    is_now = after is not None and not after.expired(now) and flt.matches(after)
    if is_now and after is not None:
        return (UPDATED if was else NEWLY_MATCHING), after
    if was and before is not None:
        return NO_LONGER_MATCHING, after or before
    return None


# --- registration properties as an entity (what q, csf and geo-queries look at) ----------

_STANDARD = ("registrationName", "description", "endpoint", "mode", "tenant", "expiresAt",
             "refreshRate", "operations")
_GEO = (("location", "location"), ("observationSpace", "observation_space"),
        ("operationSpace", "operation_space"))


@cache
def _iri(member: str) -> str:
    return core_term_map().expand(member)


def properties_entity(reg: Registration) -> Entity:
    """The registration's members and extra properties as the attributes of an entity."""
    values: dict[str, Any] = {
        "registrationName": reg.name, "description": reg.description,
        "endpoint": reg.endpoint, "mode": reg.effective_mode, "tenant": reg.tenant,
        "expiresAt": reg.expires_at, "refreshRate": reg.refresh_rate,
        "operations": reg.operations}
    attrs: dict[str, list[dict[str, Any]]] = {
        _iri(m): [{"type": PROPERTY, "value": values[m]}] for m in _STANDARD
        if values[m] is not None}
    for member, attr in _GEO:
        geometry = getattr(reg, attr)
        if geometry is not None:
            attrs[_iri(member)] = [{"type": GEO_PROPERTY, "value": geometry}]
    for iri, value in reg.properties.items():
        attrs[iri] = [_instance(value)]
    return Entity(reg.id, [_iri(REGISTRATION)], attrs, scopes=reg.scope)


def _instance(value: Any) -> dict[str, Any]:
    """A property given in normalized form stays as it is; a bare value becomes a Property."""
    if isinstance(value, dict) and value.get("type") in ATTRIBUTE_TYPES and \
            VALUE_KEYS[value["type"]] in value:
        return value
    return {"type": PROPERTY, "value": value}
