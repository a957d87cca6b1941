"""ApiKeyStore on SQLite: the `api_keys` table of the entity store's file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from urbis.context.credentials import ApiKey
from urbis.context.errors import AlreadyExists
from urbis.storage.sqlite.db import Database

_COLUMNS = "id, name, roles, key_hash, created_at, grants, revoked_at"
_GET = f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id"  # noqa: S608
_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_REVOKE = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"


def grants(key: ApiKey) -> str:
    """The scope members of a key as one JSON column."""
    return orjson.dumps({"tenants": key.tenants, "types": key.types, "entities": key.entities,
                         "department": key.department, "extra": key.extra}).decode()


def decode(row: Sequence[Any]) -> ApiKey:
    """A row in _COLUMNS order."""
    scope = orjson.loads(row[5])
    return ApiKey(id=row[0], name=row[1], roles=orjson.loads(row[2]), key_hash=row[3],
                  created_at=row[4], tenants=scope.get("tenants"), types=scope.get("types"),
                  entities=scope.get("entities"), department=scope.get("department"),
                  revoked_at=row[6], extra=scope.get("extra") or {})


class SqliteApiKeyStore:
    """API keys in the SQLite file; writes go through its writer thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_key(self, key: ApiKey) -> None:
        """Insert; AlreadyExists when the id is taken."""

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT, (key.id, key.name, orjson.dumps(key.roles).decode(),
                                       key.key_hash, key.created_at, grants(key),
                                       key.revoked_at))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"API key {key.id} already exists") from None

        await self.db.write(job)

    async def get_key(self, key_id: str) -> ApiKey | None:
        """A primary-key look-up on the calling thread."""
        row = self.db.read_inline(lambda c: c.execute(_GET, (key_id,)).fetchone())
        return None if row is None else decode(row)

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        rows = await self.db.read(lambda c: c.execute(_LIST).fetchall())
        return [decode(r) for r in rows]

    async def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark revoked; False when there is no such active key."""
        return bool(await self.db.write(lambda c: c.execute(_REVOKE, (at, key_id)).rowcount))
