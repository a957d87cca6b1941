"""Choose storage backends by URL: sqlite:///PATH (embedded default) or postgresql://..."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from urbis.storage.base import (
    ContextStore,
    EntityStore,
    InvalidationChannel,
    OutboxStore,
    SubscriptionStore,
)
from urbis.storage.devices_base import DeviceStore
from urbis.storage.registrations_base import RegistrationStore
from urbis.storage.security_base import ApiKeyStore, AuditStore
from urbis.storage.temporal_base import TemporalStore


@dataclass(slots=True)
class Stores:
    """The opened backends a broker runs on."""

    entities: EntityStore
    contexts: ContextStore
    subscriptions: SubscriptionStore
    outbox: OutboxStore
    # Set when other processes may write the same store (CAP_INVALIDATION): caches follow it.
    invalidations: InvalidationChannel | None = None
    # Entity histories (the temporal API); entity changes are journaled into it when history
    # is on (open_stores(history=True)).
    temporal: TemporalStore | None = None
    apikeys: ApiKeyStore | None = None  # set by open_stores on every backend
    # The audit log; every entity change is journaled into it when audit is on.
    audit: AuditStore | None = None
    devices: DeviceStore | None = None  # the IoT agents' registry; set on every backend
    # Context source registrations and the subscriptions to them; set on every backend.
    registrations: RegistrationStore | None = None
    csource_subscriptions: SubscriptionStore | None = None

    async def close(self) -> None:
        """Close every backend."""
        await self.subscriptions.close()
        await self.entities.close()
        await self.contexts.close()  # type: ignore[attr-defined]


def sqlite_path(url: str) -> str:
    """The file path of a sqlite:/// URL (sqlite:///rel/path or sqlite:////abs/path)."""
    parsed = urlparse(url)
    path = (parsed.netloc + parsed.path)[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise ValueError(f"no file path in {url!r}")
    return path


async def open_stores(url: str, *, readers: int = 2, synchronous: str = "full",
                      pool_min: int = 2, pool_max: int = 10, history: bool = True,
                      audit: bool = True) -> Stores:
    """Open (and migrate) the backends named by a store URL (pool sizes: PostgreSQL's)."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return await _open_sqlite(url, readers, synchronous, history, audit)
    if scheme in ("postgresql", "postgres"):
        return await _open_postgres(url, pool_min, pool_max, history, audit)
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///PATH or postgresql://...)")


async def _open_sqlite(url: str, readers: int, synchronous: str, history: bool, audit: bool
                       ) -> Stores:
    from urbis.storage.sqlite.contexts import SqliteContextStore
    from urbis.storage.sqlite.outbox import SqliteOutbox
    from urbis.storage.sqlite.store import SqliteEntityStore
    from urbis.storage.sqlite.subscriptions import SqliteSubscriptionStore

    path = sqlite_path(url)
    entities = SqliteEntityStore(path, readers=readers, synchronous=synchronous)
    await entities.open()
    contexts = SqliteContextStore(path)
    await contexts.open()
    subscriptions = SqliteSubscriptionStore(entities.db, on_new_tenant=entities.note_tenant)
    outbox = SqliteOutbox(entities.db, entities.add_journal)
    from urbis.storage.sqlite.temporal import SqliteTemporalStore

    temporal = SqliteTemporalStore(entities.db)
    if history:
        entities.add_journal(temporal.journal)
    from urbis.storage.sqlite.apikeys import SqliteApiKeyStore
    from urbis.storage.sqlite.audit import SqliteAuditStore

    audit_log = SqliteAuditStore(entities.db)
    if audit:
        entities.add_journal(audit_log.journal)
    from urbis.storage.sqlite.devices import SqliteDeviceStore
    from urbis.storage.sqlite.registrations import SqliteRegistrationStore

    return Stores(entities, contexts, subscriptions, outbox, temporal=temporal,
                  apikeys=SqliteApiKeyStore(entities.db), audit=audit_log,
                  devices=SqliteDeviceStore(entities.db),
                  registrations=SqliteRegistrationStore(entities.db, entities.note_tenant),
                  csource_subscriptions=SqliteSubscriptionStore(
                      entities.db, entities.note_tenant, prefix="csource_"))


async def _open_postgres(url: str, pool_min: int, pool_max: int, history: bool, audit: bool
                         ) -> Stores:
    from urbis.storage.postgres import open_postgres_stores
    from urbis.storage.postgres.outbox import PostgresOutbox
    from urbis.storage.postgres.subscriptions import PostgresSubscriptionStore

    pg_entities, pg_contexts = await open_postgres_stores(url, min_size=pool_min,
                                                          max_size=pool_max)
    pg_subscriptions = PostgresSubscriptionStore(pg_entities.db)
    pg_outbox = PostgresOutbox(pg_entities.db, pg_entities.add_journal)
    from urbis.storage.postgres.temporal import PostgresTemporalStore

    pg_temporal = PostgresTemporalStore(pg_entities.db)
    if history:
        pg_entities.add_journal(pg_temporal.journal)
    from urbis.storage.postgres.apikeys import PostgresApiKeyStore
    from urbis.storage.postgres.audit import PostgresAuditStore

    pg_audit = PostgresAuditStore(pg_entities.db)
    if audit:
        pg_entities.add_journal(pg_audit.journal)
    from urbis.storage.postgres.devices import PostgresDeviceStore
    from urbis.storage.postgres.registrations import PostgresRegistrationStore
    from urbis.storage.registrations_base import TOPIC_CSOURCE_SUBSCRIPTIONS

    return Stores(pg_entities, pg_contexts, pg_subscriptions, pg_outbox,
                  pg_entities.invalidations, temporal=pg_temporal,
                  apikeys=PostgresApiKeyStore(pg_entities.db), audit=pg_audit,
                  devices=PostgresDeviceStore(pg_entities.db),
                  registrations=PostgresRegistrationStore(pg_entities.db),
                  csource_subscriptions=PostgresSubscriptionStore(
                      pg_entities.db, prefix="csource_",
                      topic=TOPIC_CSOURCE_SUBSCRIPTIONS))
