"""ApiKeyStore on PostgreSQL: the `api_keys` table; a revocation is announced to every worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from urbis.context.credentials import ApiKey
from urbis.context.errors import AlreadyExists
from urbis.storage.base import TOPIC_APIKEYS
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import announce

_COLUMNS = "id, name, roles, key_hash, created_at, grants::text, revoked_at"
_GET = f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id"  # noqa: S608
_INSERT = ("INSERT INTO api_keys (id, name, roles, key_hash, created_at, grants, revoked_at) "
           "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)")
_REVOKE = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"


def _grants(key: ApiKey) -> str:
    return orjson.dumps({"tenants": key.tenants, "types": key.types, "entities": key.entities,
                         "department": key.department, "extra": key.extra}).decode()


def _decode(row: Sequence[Any]) -> ApiKey:
    scope = orjson.loads(row[5])
    return ApiKey(id=row[0], name=row[1], roles=list(row[2]), key_hash=row[3],
                  created_at=row[4], tenants=scope.get("tenants"), types=scope.get("types"),
                  entities=scope.get("entities"), department=scope.get("department"),
                  revoked_at=row[6], extra=scope.get("extra") or {})


class PostgresApiKeyStore:
    """API keys on the entity store's pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_key(self, key: ApiKey) -> None:
        """Insert; AlreadyExists when the id is taken."""
        try:
            await self.db.run(lambda c: c.execute(
                _INSERT, key.id, key.name, key.roles, key.key_hash, key.created_at,
                _grants(key), key.revoked_at), retry=False)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"API key {key.id} already exists") from None

    async def get_key(self, key_id: str) -> ApiKey | None:
        """A primary-key look-up."""
        if "\x00" in key_id:
            return None
        row = await self.db.run(lambda c: c.fetchrow(_GET, key_id))
        return None if row is None else _decode(row)

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [_decode(r) for r in await self.db.run(lambda c: c.fetch(_LIST))]

    async def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark revoked and tell every worker (their caches drop the key on commit)."""
        if "\x00" in key_id:
            return False

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                status = await conn.execute(_REVOKE, at, key_id)
                if status.endswith(" 1"):
                    await announce(conn, TOPIC_APIKEYS, key_id)
                    return True
            return False

        return await self.db.run(job, retry=False)
