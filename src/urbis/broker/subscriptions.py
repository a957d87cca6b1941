"""Subscription services (ETSI GS CIM 009 V1.8.1 clause 5.8): create, read, update, delete.

Terms are expanded with the caller's @context and stored expanded, with the URL of that
@context for the notifications: a Link header's URL, the core context when none was given, or
an ImplicitlyCreated context stored by the broker for an inline one (clause 5.13). A
`jsonldContext` the client names must be retrievable when the subscription is written.
Notifications are sent by `urbis.broker.notifier`, which is told of every subscription write
(`writing`) so that its in-memory index never matches on a stale view.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from urbis.broker.contexts import ContextService
from urbis.broker.queries import Paging, split_list
from urbis.context.actor import Actor
from urbis.context.errors import (
    AlreadyExists,
    BadRequestData,
    NonexistentTenant,
    ResourceNotFound,
    TooManyResults,
)
from urbis.context.jsonld import CORE_CONTEXT_URL, TermMap
from urbis.context.model import now_iso
from urbis.context.normalize import check_uri
from urbis.context.query.types import type_names
from urbis.context.subscription import Subscription
from urbis.context.subscription_parse import parse_subscription, patch_subscription
from urbis.security.policy import (
    SUBSCRIPTIONS_READ,
    SUBSCRIPTIONS_WRITE,
    DataPolicy,
    internal,
    requires,
)
from urbis.storage.base import NotificationOutcome, SubscriptionPage, SubscriptionStore

ID_PREFIX = "urn:ngsi-ld:Subscription:"


class SubscriptionService:
    """The only way adapters reach subscriptions; every operation takes the caller."""

    def __init__(self, store: SubscriptionStore, contexts: ContextService, paging: Paging,
                 writing: Callable[[], AbstractContextManager[None]] | None = None) -> None:
        self.store = store
        self.contexts = contexts
        self.paging = paging
        # Entered around every write (the notifier's index is stale meanwhile).
        self._writing = writing or contextlib.nullcontext
        self.policy = DataPolicy()  # set by the container from the settings

    @internal
    async def require_tenant(self, actor: Actor) -> None:
        """NonexistentTenant when a named tenant has never been written to."""
        if not actor.is_default_tenant and not await self.store.tenant_exists(actor.tenant):
            raise NonexistentTenant(f"tenant {actor.tenant} does not exist")

    @requires(SUBSCRIPTIONS_WRITE)
    async def create(self, actor: Actor, body: Any, tm: TermMap, raw_context: Any = None
                     ) -> str:
        """POST /subscriptions: validate, store, and return the (maybe generated) id."""
        sub = parse_subscription(body, tm, now_iso(), ID_PREFIX + str(uuid.uuid4()))
        self._check_scope(actor, sub)
        await self._check_jsonld_context(sub)
        if await self.store.get(actor.tenant, sub.id) is not None:
            raise AlreadyExists(f"subscription {sub.id} already exists")
        implicit = None
        if isinstance(raw_context, list) and len(raw_context) == 1:
            raw_context = raw_context[0]
        if isinstance(raw_context, str):
            sub.context = raw_context
        elif raw_context is not None:  # inline: kept by the broker, to be named by a URL
            implicit = await self.contexts.add_implicit(raw_context)
            sub.context = implicit.url
        try:
            with self._writing():
                await self.store.create(actor.tenant, sub)
        except AlreadyExists:
            if implicit is not None:
                await self.contexts.delete(Actor(), implicit.id)
            raise
        return sub.id

    @requires(SUBSCRIPTIONS_READ)
    async def get(self, actor: Actor, subscription_id: str) -> Subscription:
        """GET /subscriptions/{id}."""
        check_uri(subscription_id, "subscription id")
        await self.require_tenant(actor)
        sub = await self.store.get(actor.tenant, subscription_id)
        if sub is None:
            raise ResourceNotFound(f"subscription {subscription_id} not found")
        return sub

    @requires(SUBSCRIPTIONS_READ)
    async def query(self, actor: Actor, params: Mapping[str, Any]) -> SubscriptionPage:
        """GET /subscriptions: a page (limit, offset) and the count when asked for."""
        limit, offset, count = page_params(params, self.paging)
        await self.require_tenant(actor)
        return await self.store.query(actor.tenant, limit=limit, offset=offset, count=count)

    @requires(SUBSCRIPTIONS_WRITE)
    async def update(self, actor: Actor, subscription_id: str, body: Any, tm: TermMap) -> None:
        """PATCH /subscriptions/{id}: apply a fragment; nothing changes if it is refused."""
        check_uri(subscription_id, "subscription id")
        now = now_iso()
        probe = await self.store.get(actor.tenant, subscription_id)
        if probe is None:
            raise ResourceNotFound(f"subscription {subscription_id} not found")
        # Checked outside the store's transaction: it may fetch a remote @context.
        patched = patch_subscription(probe, body, tm, now)
        self._check_scope(actor, patched)
        await self._check_jsonld_context(patched)
        with self._writing():
            await self.store.update(actor.tenant, subscription_id,
                                    lambda current: patch_subscription(current, body, tm, now))

    @requires(SUBSCRIPTIONS_WRITE)
    async def delete(self, actor: Actor, subscription_id: str) -> None:
        """DELETE /subscriptions/{id}."""
        check_uri(subscription_id, "subscription id")
        with self._writing():
            deleted = await self.store.delete(actor.tenant, subscription_id)
        if not deleted:
            raise ResourceNotFound(f"subscription {subscription_id} not found")

    @internal
    async def record_notification(self, tenant: str, subscription_id: str,
                                  outcome: NotificationOutcome) -> bool:
        """Count a notification attempt (for the notifier); False if the subscription is gone."""
        return await self.store.record_notification(tenant, subscription_id, outcome)

    def _check_scope(self, actor: Actor, sub: Subscription) -> None:
        """A type-scoped caller (analyst) subscribes only to types it may read."""
        if self.policy.readable_types(actor) is None:
            return
        types = [t for sel in sub.entities for t in type_names(sel.type)]
        self.policy.check_query(actor, types if types and all(
            sel.type is not None for sel in sub.entities) else None)

    async def _check_jsonld_context(self, sub: Subscription) -> None:
        """A jsonldContext must resolve now (503 LdContextNotAvailable, 400 if invalid)."""
        if sub.jsonld_context is not None and sub.jsonld_context != CORE_CONTEXT_URL:
            await self.contexts.term_map(sub.jsonld_context)


def page_params(params: Mapping[str, Any], paging: Paging) -> tuple[int, int, bool]:
    """(limit, offset, count) of a list request, checked as for entity queries."""
    count = _flag(params.get("count")) or "count" in split_list(params.get("options"))
    limit = _int(params.get("limit"), "limit", paging.default_limit)
    offset = _int(params.get("offset"), "offset", 0)
    if limit < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with count=true")
    if limit > paging.max_limit:
        raise TooManyResults(f"limit {limit} exceeds the maximum of {paging.max_limit}")
    return limit, offset, count


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequestData(f"{name} must be an integer, got {value!r:.50}") from None


def _flag(value: Any) -> bool:
    if value is None or str(value).lower() == "false":
        return False
    if str(value).lower() == "true":
        return True
    raise BadRequestData(f"count must be true or false, got {value!r:.50}")
