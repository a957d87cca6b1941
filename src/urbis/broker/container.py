"""The broker's services wired together for one process."""

from __future__ import annotations

from dataclasses import dataclass

from urbis.broker.batch import BatchService
from urbis.broker.contexts import ContextService
from urbis.broker.csource_notify import CSourceNotifier
from urbis.broker.csource_subscriptions import CSourceSubscriptionService
from urbis.broker.entities import EntityService
from urbis.broker.federation import Federation
from urbis.broker.federation_batch import DistributedBatch
from urbis.broker.federation_read import DistributedReads
from urbis.broker.federation_setup import build_federation
from urbis.broker.federation_write import DistributedWrites
from urbis.broker.notifier import Notifier
from urbis.broker.notify_build import Builder
from urbis.broker.notify_index import SubscriptionIndex
from urbis.broker.notify_tally import Tallies
from urbis.broker.queries import Paging
from urbis.broker.registration_setup import build_registration_services
from urbis.broker.registrations import RegistrationService
from urbis.broker.subscriptions import SubscriptionService
from urbis.broker.support import SupportService
from urbis.broker.temporal import TemporalService, retention_of
from urbis.context.actor import Actor
from urbis.observability.logs import request_id
from urbis.observability.timing import TimedEntityStore
from urbis.security import policy
from urbis.security.apikeys import ApiKeyService
from urbis.security.audit import AuditService, audit_retention
from urbis.security.authn import Authenticator
from urbis.security.setup import build_security, data_policy
from urbis.settings import Settings
from urbis.storage.registry import Stores, open_stores
from urbis.storage.security_base import AuditStore


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
    notifier: Notifier
    temporal: TemporalService | None = None  # None when the store keeps no history
    apikeys: ApiKeyService | None = None
    audit: AuditService | None = None
    authenticator: Authenticator | None = None
    # Context source registrations, the subscriptions to them and their notifier.
    registrations: RegistrationService | None = None
    csource_subscriptions: CSourceSubscriptionService | None = None
    csource_notifier: CSourceNotifier | None = None
    # Distributed operations over the registered sources (set by build_broker).
    federation: Federation | None = None
    federated_reads: DistributedReads | None = None
    federated_writes: DistributedWrites | None = None
    federated_batch: DistributedBatch | None = None

    async def close(self) -> None:
        """Stop the notifier, flush context usage and release the stores."""
        if self.temporal is not None:
            await self.temporal.close()
        if self.audit is not None:
            if policy.hooks.on_deny == self.audit.denied:
                policy.hooks.on_deny = policy.hooks.on_allow = None
            await self.audit.close()
        if self.csource_notifier is not None:
            await self.csource_notifier.close()
        if self.federation is not None:
            await self.federation.close()
        await self.notifier.close()
        await self.contexts.close()
        if self.authenticator is not None and self.authenticator.jwks is not None:
            await self.authenticator.jwks.close()
        await self.stores.close()


async def build_broker(settings: Settings) -> Broker:
    """Open the stores named by the settings and build the services on them."""
    stores = await open_stores(settings.store, readers=settings.sqlite_readers,
                               synchronous=settings.sqlite_synchronous,
                               pool_min=settings.pg_pool_min, pool_max=settings.pg_pool_max,
                               history=settings.history, audit=settings.audit)
    contexts = ContextService(
        stores.contexts,
        fetch_timeout=settings.context_fetch_timeout,
        max_bytes=settings.context_max_bytes,
        cache_size=settings.context_cache_size,
        base_url=settings.public_url,
    )
    if stores.invalidations is not None:  # other workers may change what is cached here
        stores.invalidations.subscribe(contexts.invalidate)
    policy = data_policy(settings)
    entities = EntityService(TimedEntityStore(stores.entities), policy)
    paging = Paging(settings.default_limit, settings.max_limit)
    index = SubscriptionIndex(stores.subscriptions)
    if stores.invalidations is not None:
        stores.invalidations.subscribe(index.invalidate)
    stores.outbox.set_filter(index.keep)
    notifier = Notifier(settings, stores.outbox, index,
                        Builder(index, contexts, stores.entities, settings.max_limit),
                        Tallies(stores.subscriptions))
    entities.after_write.append(notifier.wake)
    subscriptions = SubscriptionService(stores.subscriptions, contexts, paging, index.writing)
    subscriptions.policy = policy
    broker = Broker(stores, entities, BatchService(entities), contexts, paging, subscriptions,
                    SupportService(stores), notifier)
    federation = build_registration_services(settings, stores, contexts, paging)
    if federation is not None:
        broker.registrations = federation.registrations
        broker.csource_subscriptions = federation.csource_subscriptions
        broker.csource_notifier = federation.notifier
    distributed = build_federation(settings, broker.registrations, contexts, entities,
                                   broker.batch)
    broker.federation, broker.federated_reads = distributed.federation, distributed.reads
    broker.federated_writes, broker.federated_batch = distributed.writes, distributed.batch
    if stores.apikeys is not None:
        broker.apikeys, broker.authenticator = build_security(settings, stores.apikeys,
                                                              stores.invalidations)
    if stores.temporal is not None:
        broker.temporal = TemporalService(
            stores.temporal, entities, paging, instance_limit=settings.temporal_instance_limit,
            retention=retention_of(settings.history_retention),
            purge_interval=settings.history_purge_interval)
        broker.temporal.start()
    if stores.audit is not None:
        broker.audit = build_audit(settings, stores.audit)
        audit = broker.audit

        async def sensitive_read(actor: Actor, ids: list[str], attrs: list[str]) -> None:
            await audit.record(actor, "entities.read sensitive attributes", entity_ids=ids,
                               attributes=attrs)

        entities.on_sensitive_read.append(sensitive_read)
    return broker


def build_audit(settings: Settings, store: AuditStore) -> AuditService:
    """The audit service, its sealer started; refusals are recorded through the policy."""
    audit = AuditService(store, enabled=settings.audit,
                         retention_micros=audit_retention(settings.audit_retention))
    policy.hooks.request_id = request_id.get
    if settings.audit:
        policy.hooks.on_deny, policy.hooks.on_allow = audit.denied, audit.allowed
    audit.start()
    return audit
