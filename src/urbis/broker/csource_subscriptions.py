"""Subscriptions to context source registrations (ETSI GS CIM 009 V1.8.1 clause 5.11).

They are Subscriptions (clause 5.2.12) kept in a store of their own, so everything but the
permissions and a few rules is the subscription service's: `entities` and
`watchedAttributes` select on the registrations' `information`, `q` and `csf` on their
properties, `geoQ` on their location. Periodic ones (`timeInterval`) are not supported, nor
GeoJSON notifications. A new subscription is sent the registrations it matches at once
(newlyMatching); then every registration change is notified (`csource_notify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from urbis.broker.subscriptions import SubscriptionService
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, OperationNotSupported
from urbis.context.jsonld import TermMap
from urbis.context.notification import GEO_JSON
from urbis.context.subscription import Subscription
from urbis.security.policy import REGISTRATIONS_READ, REGISTRATIONS_SUBSCRIBE, requires
from urbis.storage.base import SubscriptionPage


class InitialNotifier(Protocol):
    """Sends a new subscription the registrations it already matches."""

    def initial(self, tenant: str, subscription_id: str) -> None:
        """Start sending (in the background)."""


class CSourceSubscriptionService:
    """/csourceSubscriptions: the subscription service over the csource subscription store."""

    def __init__(self, subscriptions: SubscriptionService, notifier: InitialNotifier) -> None:
        self.subscriptions = subscriptions
        self.notifier = notifier
        self.paging = subscriptions.paging

    @requires(REGISTRATIONS_SUBSCRIBE)
    async def create(self, actor: Actor, body: Any, tm: TermMap, raw_context: Any = None
                     ) -> str:
        """POST /csourceSubscriptions: the id; the initial notification follows."""
        check_csource_members(body)
        sub_id = await self.subscriptions.create(actor, body, tm, raw_context)
        self.notifier.initial(actor.tenant, sub_id)
        return sub_id

    @requires(REGISTRATIONS_READ)
    async def get(self, actor: Actor, subscription_id: str) -> Subscription:
        """GET /csourceSubscriptions/{id}."""
        return await self.subscriptions.get(actor, subscription_id)

    @requires(REGISTRATIONS_READ)
    async def query(self, actor: Actor, params: Mapping[str, Any]) -> SubscriptionPage:
        """GET /csourceSubscriptions: a page, and the count when asked for."""
        return await self.subscriptions.query(actor, params)

    @requires(REGISTRATIONS_SUBSCRIBE)
    async def update(self, actor: Actor, subscription_id: str, body: Any, tm: TermMap) -> None:
        """PATCH /csourceSubscriptions/{id}."""
        check_csource_members(body)
        await self.subscriptions.update(actor, subscription_id, body, tm)

    @requires(REGISTRATIONS_SUBSCRIBE)
    async def delete(self, actor: Actor, subscription_id: str) -> None:
        """DELETE /csourceSubscriptions/{id}."""
        await self.subscriptions.delete(actor, subscription_id)


def check_csource_members(body: Any) -> None:
    """The members a subscription to registrations cannot have (checked before the rest)."""
    if not isinstance(body, dict):
        return  # the subscription parser says what is wrong
    if body.get("timeInterval") is not None:
        raise OperationNotSupported("periodic notifications of registrations (timeInterval) "
                                    "are not supported")
    notification = body.get("notification")
    endpoint = notification.get("endpoint") if isinstance(notification, dict) else None
    if isinstance(endpoint, dict) and endpoint.get("accept") == GEO_JSON:
        raise BadRequestData("registrations are not notified as GeoJSON: use accept "
                             "application/json or application/ld+json")
