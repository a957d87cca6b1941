"""The active subscriptions of every tenant, in memory, indexed as the store indexes them.

Matching a change looks up (tenant, type) and (tenant, attribute) here, as
`SubscriptionStore.candidates` does in the database, instead of a query per change. The index
is reloaded from `SubscriptionStore.active` after any subscription changes: this process's
own changes mark it stale at once, other workers' through the InvalidationChannel
(TOPIC_SUBSCRIPTIONS). While it is stale (or not loaded yet) the outbox filter keeps every
change, so nothing is skipped on a stale view.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from urbis.context.model import now_iso
from urbis.context.subscription import Subscription
from urbis.storage.base import TOPIC_ALL, TOPIC_SUBSCRIPTIONS, Applied, SubscriptionStore


@dataclass(slots=True)
class _Tenant:
    """One tenant's active subscriptions by id, type key and attribute key (None: any)."""

    by_id: dict[str, Subscription] = field(default_factory=dict)
    by_type: dict[str | None, list[Subscription]] = field(default_factory=dict)
    by_attr: dict[str | None, set[str]] = field(default_factory=dict)

    def add(self, sub: Subscription) -> None:
        self.by_id[sub.id] = sub
        if sub.time_interval is not None:  # periodic: never triggered by a change
            return
        for key in sub.type_keys():
            self.by_type.setdefault(key, []).append(sub)
        for attr in sub.attr_keys():
            self.by_attr.setdefault(attr, set()).add(sub.id)


class SubscriptionIndex:
    """Active subscriptions per tenant, reloaded when stale."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store
        self._tenants: dict[str, _Tenant] = {}
        self._version = 0  # bumped by every invalidation
        self._loaded: int | None = None  # the version the loaded data reflects
        self._writing = 0  # subscription writes of this process under way
        self._lock = asyncio.Lock()

    @property
    def fresh(self) -> bool:
        """Loaded, no subscription changed since, and none is being written."""
        return self._loaded == self._version and not self._writing

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around a subscription write of this process: stale from its start to its end."""
        self._writing += 1
        try:
            yield
        finally:
            self._version += 1
            self._writing -= 1

    def invalidate(self, topic: str = TOPIC_SUBSCRIPTIONS, key: str | None = None) -> None:
        """A subscription changed (or anything may have): reload before the next match."""
        if topic in (TOPIC_SUBSCRIPTIONS, TOPIC_ALL):
            self._version += 1

    async def refresh(self) -> None:
        """Reload from the store if stale."""
        if self.fresh:
            return
        async with self._lock:
            while self._loaded != self._version:
                version = self._version
                tenants: dict[str, _Tenant] = {}
                for tenant, sub in await self.store.active(now_iso()):
                    tenants.setdefault(tenant, _Tenant()).add(sub)
                self._tenants = tenants
                self._loaded = version

    def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """An active subscription by id."""
        found = self._tenants.get(tenant)
        return None if found is None else found.by_id.get(subscription_id)

    def candidates(self, tenant: str, types: Sequence[str], attrs: Sequence[str]
                   ) -> list[Subscription]:
        """Subscriptions about one of the types (or any) and one of the attributes (or any)."""
        found = self._tenants.get(tenant)
        if found is None:
            return []
        subs: dict[str, Subscription] = {}
        for key in (None, *types):
            for sub in found.by_type.get(key, ()):
                subs[sub.id] = sub
        if not subs:
            return []
        ids = set(found.by_attr.get(None, ()))
        for attr in attrs:
            ids.update(found.by_attr.get(attr, ()))
        return [s for i, s in subs.items() if i in ids]

    def keep(self, tenant: str, applied: Sequence[Applied]) -> bool:
        """The outbox filter: False only when, on a fresh view, no subscription may match."""
        if not self.fresh:
            return True
        found = self._tenants.get(tenant)
        if found is None or not found.by_type:
            return False
        if None in found.by_type:
            return True
        for item in applied:
            for state in (item.after, item.before):
                if state is not None and any(t in found.by_type for t in state.types):
                    return True
        return False
