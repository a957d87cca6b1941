"""Turn outbox changes (and periodic subscriptions) into the notifications to send.

Each write batch gives at most one notification per subscription, carrying every entity of
the batch that the subscription matched (`urbis.context.notify_match`), rendered with the
subscription's @context (`urbis.context.notification`). Throttled subscriptions skip
notifications that come sooner than `throttling` seconds after the last one (per process).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from urbis.broker.contexts import ContextService
from urbis.broker.notify_index import SubscriptionIndex
from urbis.context.errors import NgsiError
from urbis.context.jsonld import TermMap, core_term_map
from urbis.context.model import Entity
from urbis.context.notification import (
    ID_PREFIX,
    context_url,
    notification_body,
    render_change,
    render_options,
)
from urbis.context.notify_match import EntityChange, trigger_reason
from urbis.context.query.scope import parse_scope_q
from urbis.context.render import render
from urbis.context.subscription import Subscription
from urbis.storage.base import EntityQuery, EntityStore, OutboxChange

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Ready:
    """A notification built for one subscription, not sent yet."""

    tenant: str
    sub: Subscription
    body: dict[str, Any]
    created: float  # epoch seconds of the change (latency measurements)


@dataclass(slots=True)
class _Group:
    """The entities of one notification being built."""

    sub: Subscription
    reason: str
    created: float
    data: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


def _group_for(groups: dict[str, list[_Group]], out: list[_Group], sub: Subscription,
               reason: str, entity_id: str, created: float, most: int) -> _Group:
    """The subscription's notification that can take this entity (a new one if none)."""
    mine = groups.setdefault(sub.id, [])
    last = mine[-1] if mine else None
    if last is None or last.reason != reason or entity_id in last.ids or \
            len(last.data) >= most:
        last = _Group(sub, reason, created)
        mine.append(last)
        out.append(last)
    last.ids.add(entity_id)
    return last


def new_notification_id() -> str:
    """A fresh urn:ngsi-ld:Notification:... id."""
    return ID_PREFIX + str(uuid.uuid4())


class Builder:
    """Matches changes against the subscription index and renders notifications."""

    def __init__(self, index: SubscriptionIndex, contexts: ContextService,
                 entities: EntityStore, max_entities: int) -> None:
        self.index = index
        self.contexts = contexts
        self.entities = entities
        self.max_entities = max_entities
        self._last_sent: dict[tuple[str, str], float] = {}

    async def term_map(self, sub: Subscription) -> TermMap:
        """The subscription's @context (the core one if it cannot be had now)."""
        try:
            return await self.contexts.term_map(context_url(sub))
        except NgsiError as exc:
            log.warning("subscription %s: @context %s unavailable (%s); using the core "
                        "context", sub.id, context_url(sub), exc)
            return core_term_map()

    async def from_changes(self, rows: Sequence[OutboxChange], now: str) -> list[Ready]:
        """The notifications of some write batches of one tenant, in their order.

        The changes that match one subscription go out together, as the entities of one
        notification (at most `max_entities`, and each entity once: a second change of an
        entity starts the subscription's next notification, so none is lost or merged).
        """
        groups: dict[str, list[_Group]] = {}
        out: list[_Group] = []
        tenant = rows[0].tenant
        for row in rows:
            for applied in row.changes:
                change = EntityChange.of(applied.before, applied.after)
                for sub in self.index.candidates(tenant, change.types, change.attrs):
                    if sub.expired(now):
                        continue
                    reason = trigger_reason(sub, change)
                    if reason is None:
                        continue
                    tm = await self.term_map(sub)
                    group = _group_for(groups, out, sub, reason, applied.entity_id,
                                       row.created, self.max_entities)
                    group.data.append(render_change(sub, change, tm, now))
        return [Ready(tenant, g.sub, notification_body(g.sub, g.data, now,
                                                       new_notification_id(), g.reason),
                      g.created)
                for g in out if not self.throttled(tenant, g.sub)]

    def throttled(self, tenant: str, sub: Subscription) -> bool:
        """True when a notification now would come too soon after the last one."""
        if not sub.throttling:
            return False
        key, now = (tenant, sub.id), time.monotonic()
        last = self._last_sent.get(key)
        if last is not None and now - last < sub.throttling:
            return True
        self._last_sent[key] = now
        return False

    async def periodic(self, tenant: str, sub: Subscription, now: str) -> Ready | None:
        """The notification of a periodic subscription: every entity it selects now."""
        found: dict[str, Entity] = {}
        for query in self._queries(sub):
            for entity in (await self.entities.query(tenant, query)).entities:
                found.setdefault(entity.id, entity)
        if not found:
            return None
        tm = await self.term_map(sub)
        opts = render_options(sub)
        data = [render(e, tm, opts) for e in list(found.values())[: self.max_entities]]
        return Ready(tenant, sub, notification_body(sub, data, now, new_notification_id()),
                     time.time())

    def _queries(self, sub: Subscription) -> list[EntityQuery]:
        scope = parse_scope_q(sub.scope_q) if sub.scope_q else None
        geo = sub.geo_query()
        return [EntityQuery(ids=[s.id] if s.id else None, id_pattern=s.id_pattern,
                            type_expr=s.type, q=sub.q, scope_q=scope, geo=geo,
                            limit=self.max_entities)
                for s in sub.entities]
