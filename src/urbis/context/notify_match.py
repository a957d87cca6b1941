"""Which subscriptions one entity change triggers (ETSI GS CIM 009 V1.8.1 clauses 5.8.1, 5.11).

A change is the entity before and after one write (None: absent before / deleted). It fires
triggers: `entityCreated` (and `attributeCreated`, its attributes being new), `entityDeleted`,
and for an update `attributeCreated` / `attributeUpdated` / `attributeDeleted` for each
attribute added, rewritten (any instance differs, its modifiedAt included: an update with the
same value is an update) or removed, and `entityUpdated` when any of these happened or the
types or scopes changed. With `watchedAttributes`, only changes of those attributes count.

A subscription matches when one of its `notificationTrigger` fired, an `entities` selector
(type selection, id, idPattern) selects the entity, and `q`, `scopeQ` and `geoQ` hold on the
entity as the change left it (as it was, for a deletion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from urbis.context.geo import GeoQuery, entity_matches, parse_geo_q_object
from urbis.context.model import Entity
from urbis.context.query.evaluate import q_matches, scope_matches, types_match
from urbis.context.query.q import compile_regex
from urbis.context.query.scope import ScopeNode, parse_scope_q
from urbis.context.subscription import TRIGGERS, Subscription

ENTITY_CREATED, ENTITY_UPDATED, ENTITY_DELETED = TRIGGERS[:3]
ATTRIBUTE_CREATED, ATTRIBUTE_UPDATED, ATTRIBUTE_DELETED = TRIGGERS[3:]


@dataclass(slots=True)
class EntityChange:
    """One entity's state before and after a write, and what changed."""

    before: Entity | None
    after: Entity | None
    created: list[str] = field(default_factory=list)  # attribute IRIs
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    other: bool = False  # types or scopes changed

    @classmethod
    def of(cls, before: Entity | None, after: Entity | None) -> EntityChange:
        """Work out which attributes the write created, updated and deleted."""
        change = cls(before, after)
        if before is None and after is not None:
            change.created = list(after.attrs)
        elif after is None and before is not None:
            change.deleted = list(before.attrs)
        elif before is not None and after is not None:
            old, new = before.attrs, after.attrs
            change.created = [a for a in new if a not in old]
            change.updated = [a for a in new if a in old and new[a] != old[a]]
            change.deleted = [a for a in old if a not in new]
            change.other = before.types != after.types or before.scopes != after.scopes
        return change

    @property
    def entity(self) -> Entity:
        """The entity as the change left it (as it was, for a deletion)."""
        entity = self.after if self.after is not None else self.before
        assert entity is not None
        return entity

    @property
    def types(self) -> list[str]:
        """Every type the entity had before or has after the change."""
        types = list(self.after.types) if self.after is not None else []
        if self.before is not None:
            types.extend(t for t in self.before.types if t not in types)
        return types

    @property
    def attrs(self) -> list[str]:
        """Every attribute the change touched."""
        return [*self.created, *self.updated, *self.deleted]

    def fired(self, watched: Iterable[str] | None) -> list[str]:
        """The triggers this change fires for a subscription watching `watched` (None: all)."""
        keep = None if watched is None else set(watched)

        def some(attrs: list[str]) -> bool:
            return bool(attrs) and (keep is None or any(a in keep for a in attrs))

        if self.before is None:
            return [ENTITY_CREATED, ATTRIBUTE_CREATED] if some(self.created) or (
                keep is None) else []
        if self.after is None:
            return [ENTITY_DELETED] if keep is None or some(self.deleted) else []
        out = [name for name, attrs in ((ATTRIBUTE_CREATED, self.created),
                                        (ATTRIBUTE_UPDATED, self.updated),
                                        (ATTRIBUTE_DELETED, self.deleted)) if some(attrs)]
        if out or (keep is None and self.other):
            out.insert(0, ENTITY_UPDATED)
        return out


def trigger_reason(sub: Subscription, change: EntityChange) -> str | None:
    """The trigger (of the subscription's) that this change fires, or None: not notified."""
    fired = change.fired(sub.watched)
    if not fired:
        return None
    wanted = sub.effective_triggers
    reason = next((t for t in fired if t in wanted), None)
    if reason is None or not selects(sub, change.entity):
        return None
    return reason


def selects(sub: Subscription, entity: Entity) -> bool:
    """Whether the entity satisfies the subscription's entities, q, scopeQ and geoQ."""
    if sub.entities and not any(
            types_match(s.type, entity.types)
            and (s.id is None or s.id == entity.id)
            and (s.id_pattern is None or compile_regex(s.id_pattern).search(entity.id))
            for s in sub.entities):
        return False
    if sub.q is not None and not q_matches(sub.q, entity):
        return False
    if sub.scope_q is not None and not scope_matches(_scope(sub.scope_q), entity.scopes):
        return False
    geo = _geo(sub)
    return geo is None or entity_matches(geo, entity)


@lru_cache(maxsize=1024)
def _scope(text: str) -> ScopeNode:
    return parse_scope_q(text)


def _geo(sub: Subscription) -> GeoQuery | None:
    if sub.geo_q is None:
        return None
    return _parsed_geo(json.dumps(sub.geo_q, sort_keys=True))


@lru_cache(maxsize=1024)
def _parsed_geo(text: str) -> GeoQuery:
    return parse_geo_q_object(json.loads(text), _same)


def _same(term: str) -> str:
    return term
