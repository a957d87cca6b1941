"""PostgreSQL + PostGIS storage: `postgresql://` / `postgres://` store URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urbis.storage.postgres.contexts import PostgresContextStore
    from urbis.storage.postgres.store import PostgresEntityStore


async def open_postgres_stores(url: str, *, min_size: int = 2, max_size: int = 10
                               ) -> tuple[PostgresEntityStore, PostgresContextStore]:
    """Open (and migrate) the entity and context stores of a PostgreSQL URL; one shared pool."""
    from urbis.storage.postgres.contexts import PostgresContextStore
    from urbis.storage.postgres.store import PostgresEntityStore

    entities = PostgresEntityStore(url, min_size=min_size, max_size=max_size)
    await entities.open()
    contexts = PostgresContextStore(url, database=entities.db)
    await contexts.open()
    return entities, contexts
