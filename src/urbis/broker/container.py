"""The broker's services wired together for one process."""

from __future__ import annotations

from dataclasses import dataclass

from urbis.broker.batch import BatchService
from urbis.broker.contexts import ContextService
from urbis.broker.entities import EntityService
from urbis.broker.queries import Paging
from urbis.broker.subscriptions import SubscriptionService
from urbis.broker.support import SupportService
from urbis.observability.timing import TimedEntityStore
from urbis.settings import Settings
from urbis.storage.registry import Stores, open_stores


@dataclass(slots=True)
class Broker:
    """Every service an adapter may call."""

    stores: Stores
    entities: EntityService
    batch: BatchService
    contexts: ContextService
    paging: Paging
    subscriptions: SubscriptionService
    support: SupportService

    async def close(self) -> None:
        """Flush context usage and release the stores."""
        await self.contexts.close()
        await self.stores.close()


async def build_broker(settings: Settings) -> Broker:
    """Open the stores named by the settings and build the services on them."""
    stores = await open_stores(settings.store, readers=settings.sqlite_readers,
                               synchronous=settings.sqlite_synchronous,
                               pool_min=settings.pg_pool_min, pool_max=settings.pg_pool_max)
    contexts = ContextService(
        stores.contexts,
        fetch_timeout=settings.context_fetch_timeout,
        max_bytes=settings.context_max_bytes,
        cache_size=settings.context_cache_size,
        base_url=settings.public_url,
    )
    if stores.invalidations is not None:  # other workers may change what is cached here
        stores.invalidations.subscribe(contexts.invalidate)
    entities = EntityService(TimedEntityStore(stores.entities))
    paging = Paging(settings.default_limit, settings.max_limit)
    subscriptions = SubscriptionService(stores.subscriptions, contexts, paging)
    return Broker(stores, entities, BatchService(entities), contexts, paging, subscriptions,
                  SupportService(stores))
