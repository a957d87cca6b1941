"""Choose storage backends by URL: sqlite:///PATH (embedded default) or postgresql://..."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from urbis.storage.base import ContextStore, EntityStore, InvalidationChannel, SubscriptionStore


@dataclass(slots=True)
class Stores:
    """The opened backends a broker runs on."""

    entities: EntityStore
    contexts: ContextStore
    subscriptions: SubscriptionStore
    # Set when other processes may write the same store (CAP_INVALIDATION): caches follow it.
    invalidations: InvalidationChannel | None = None

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
                      pool_min: int = 2, pool_max: int = 10) -> Stores:
    """Open (and migrate) the backends named by a store URL (pool sizes: PostgreSQL's)."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from urbis.storage.sqlite.contexts import SqliteContextStore
        from urbis.storage.sqlite.store import SqliteEntityStore
        from urbis.storage.sqlite.subscriptions import SqliteSubscriptionStore

        path = sqlite_path(url)
        entities = SqliteEntityStore(path, readers=readers, synchronous=synchronous)
        await entities.open()
        contexts = SqliteContextStore(path)
        await contexts.open()
        subscriptions = SqliteSubscriptionStore(entities.db, on_new_tenant=entities.note_tenant)
        return Stores(entities, contexts, subscriptions)
    if scheme in ("postgresql", "postgres"):
        from urbis.storage.postgres import open_postgres_stores
        from urbis.storage.postgres.subscriptions import PostgresSubscriptionStore

        pg_entities, pg_contexts = await open_postgres_stores(url, min_size=pool_min,
                                                              max_size=pool_max)
        pg_subscriptions = PostgresSubscriptionStore(pg_entities.db)
        return Stores(pg_entities, pg_contexts, pg_subscriptions, pg_entities.invalidations)
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///PATH or postgresql://...)")
