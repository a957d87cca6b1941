"""DeviceStore on PostgreSQL; every group or device change is announced to every worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from urbis.context.devices import (
    DeadLetter,
    Device,
    ServiceGroup,
    duplicate_device,
    duplicate_group,
)
from urbis.storage.devices_base import TOPIC_DEVICES, DeadLetterQuery, Scope
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import announce

_G = "apikey, resource, tenant, service_path, entity_type, body, created_at"
_D = "tenant, device_id, service_path, apikey, entity_name, entity_type, body, created_at, " \
     "last_seen"
_L = "seq, at, tenant, apikey, device_id, transport, reason, detail, payload"
_ADD_GROUP = f"INSERT INTO iot_groups ({_G}) VALUES ($1, $2, $3, $4, $5, $6, $7)"  # noqa: S608
_BY_APIKEY = f"SELECT {_G} FROM iot_groups WHERE apikey = $1 ORDER BY resource"  # noqa: S608
_PUT_GROUP = ("UPDATE iot_groups SET entity_type = $1, body = $2 "
              "WHERE apikey = $3 AND resource = $4 AND tenant = $5")
_DEL_GROUP = "DELETE FROM iot_groups WHERE tenant = $1 AND apikey = $2 AND resource = $3"
_ADD_DEVICE = (f"INSERT INTO iot_devices ({_D}) "  # noqa: S608
               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
_GET_DEVICE = f"SELECT {_D} FROM iot_devices WHERE tenant = $1 AND device_id = $2"  # noqa: S608
_FIND_DEVICE = (f"SELECT {_D} FROM iot_devices "  # noqa: S608
                "WHERE apikey = $1 AND device_id = $2 AND apikey <> ''")
_PUT_DEVICE = ("UPDATE iot_devices SET service_path = $1, apikey = $2, entity_name = $3, "
               "entity_type = $4, body = $5 WHERE tenant = $6 AND device_id = $7 "
               "RETURNING (SELECT apikey FROM iot_devices WHERE tenant = $6 AND device_id = $7)")
_DEL_DEVICE = "DELETE FROM iot_devices WHERE tenant = $1 AND device_id = $2 RETURNING apikey"
_TOUCH = ("UPDATE iot_devices d SET last_seen = s.at FROM unnest($1::text[], $2::text[], "
          "$3::text[]) AS s(tenant, device_id, at) WHERE d.tenant = s.tenant "
          "AND d.device_id = s.device_id AND (d.last_seen IS NULL OR d.last_seen < s.at)")
_ADD_LETTERS = ("INSERT INTO iot_dead_letters (at, tenant, apikey, device_id, transport, "
                "reason, detail, payload) SELECT * FROM unnest($1::text[], $2::text[], "
                "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])")
_TRIM = ("DELETE FROM iot_dead_letters WHERE seq <= "
         "(SELECT max(seq) FROM iot_dead_letters) - $1")


def _group(row: Sequence[Any]) -> ServiceGroup:
    return ServiceGroup(tenant=row[2], service_path=row[3], apikey=row[0], resource=row[1],
                        entity_type=row[4], body=orjson.loads(row[5]), created_at=row[6])


def _device(row: Sequence[Any]) -> Device:
    return Device(tenant=row[0], device_id=row[1], service_path=row[2], apikey=row[3],
                  entity_name=row[4], entity_type=row[5], body=orjson.loads(row[6]),
                  created_at=row[7], last_seen=row[8])


def _scope_where(scope: Scope) -> tuple[str, list[Any]]:
    if scope.service_path is None:
        return "tenant = $1", [scope.tenant]
    return "tenant = $1 AND service_path = $2", [scope.tenant, scope.service_path]


def _clean(*values: str | None) -> bool:
    """PostgreSQL text cannot hold NUL: such a key matches nothing."""
    return not any(v is not None and "\x00" in v for v in values)


class PostgresDeviceStore:
    """The IoT registry on the entity store's pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_groups(self, groups: Sequence[ServiceGroup]) -> None:
        """Insert all or none, announcing each apikey."""

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for g in groups:
                    try:
                        async with conn.transaction():
                            await conn.execute(_ADD_GROUP, g.apikey, g.resource, g.tenant,
                                               g.service_path, g.entity_type,
                                               orjson.dumps(g.body).decode(), g.created_at)
                    except asyncpg.UniqueViolationError:
                        raise duplicate_group(g.apikey, g.resource) from None
                for apikey in {g.apikey for g in groups}:
                    await announce(conn, TOPIC_DEVICES, apikey)

        await self.db.run(job, retry=False)

    async def groups(self, scope: Scope, apikey: str | None = None,
                     resource: str | None = None) -> tuple[list[ServiceGroup], int]:
        """A page of a scope's groups and the total."""
        if not _clean(scope.tenant, scope.service_path, apikey, resource):
            return [], 0
        where, params = _scope_where(scope)
        for column, value in (("apikey", apikey), ("resource", resource)):
            if value is not None:
                params.append(value)
                where += f" AND {column} = ${len(params)}"
        page = (f"SELECT {_G}, count(*) OVER () FROM iot_groups WHERE {where} "  # noqa: S608
                f"ORDER BY apikey, resource LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}")
        rows = await self.db.run(lambda c: c.fetch(page, *params, scope.limit, scope.offset))
        return [_group(r) for r in rows], await self._count(rows, "iot_groups", where, params)

    async def _count(self, rows: list[Any], table: str, where: str, params: list[Any]) -> int:
        if rows:
            return int(rows[0][-1])
        sql = f"SELECT count(*) FROM {table} WHERE {where}"  # noqa: S608
        return int(await self.db.run(lambda c: c.fetchval(sql, *params)))

    async def groups_by_apikey(self, apikey: str) -> list[ServiceGroup]:
        """An index look-up."""
        if not _clean(apikey):
            return []
        return [_group(r) for r in await self.db.run(lambda c: c.fetch(_BY_APIKEY, apikey))]

    async def replace_group(self, group: ServiceGroup) -> bool:
        """Update the body of a group and announce it."""
        g = group

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                status = await conn.execute(_PUT_GROUP, g.entity_type,
                                            orjson.dumps(g.body).decode(), g.apikey,
                                            g.resource, g.tenant)
                if status.endswith(" 0"):
                    return False
                await announce(conn, TOPIC_DEVICES, g.apikey)
                return True

        return await self.db.run(job, retry=False)

    async def delete_group(self, tenant: str, apikey: str, resource: str) -> bool:
        """Delete one group and announce it."""
        if not _clean(tenant, apikey, resource):
            return False

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                status = await conn.execute(_DEL_GROUP, tenant, apikey, resource)
                if status.endswith(" 0"):
                    return False
                await announce(conn, TOPIC_DEVICES, apikey)
                return True

        return await self.db.run(job, retry=False)

    async def add_devices(self, devices: Sequence[Device]) -> None:
        """Insert all or none, announcing each apikey."""

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for d in devices:
                    try:
                        async with conn.transaction():
                            await conn.execute(_ADD_DEVICE, *_device_row(d))
                    except asyncpg.UniqueViolationError:
                        raise duplicate_device(d.device_id) from None
                for apikey in {d.apikey for d in devices if d.apikey}:
                    await announce(conn, TOPIC_DEVICES, apikey)

        await self.db.run(job, retry=False)

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """A primary-key look-up."""
        if not _clean(tenant, device_id):
            return None
        row = await self.db.run(lambda c: c.fetchrow(_GET_DEVICE, tenant, device_id))
        return None if row is None else _device(row)

    async def find_device(self, apikey: str, device_id: str) -> Device | None:
        """An index look-up."""
        if not _clean(apikey, device_id):
            return None
        row = await self.db.run(lambda c: c.fetchrow(_FIND_DEVICE, apikey, device_id))
        return None if row is None else _device(row)

    async def devices(self, scope: Scope) -> tuple[list[Device], int]:
        """A page of a scope's devices and the total."""
        if not _clean(scope.tenant, scope.service_path):
            return [], 0
        where, params = _scope_where(scope)
        page = (f"SELECT {_D}, count(*) OVER () FROM iot_devices WHERE {where} "  # noqa: S608
                f"ORDER BY device_id LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}")
        rows = await self.db.run(lambda c: c.fetch(page, *params, scope.limit, scope.offset))
        return [_device(r) for r in rows], await self._count(rows, "iot_devices", where, params)

    async def replace_device(self, device: Device) -> bool:
        """Update a device (not its last_seen); announce its old and new apikey."""
        d = device

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                try:
                    old = await conn.fetchrow(_PUT_DEVICE, d.service_path, d.apikey,
                                              d.entity_name, d.entity_type,
                                              orjson.dumps(d.body).decode(), d.tenant,
                                              d.device_id)
                except asyncpg.UniqueViolationError:
                    raise duplicate_device(d.device_id) from None
                if old is None:
                    return False
                for apikey in {old[0], d.apikey} - {"", None}:
                    await announce(conn, TOPIC_DEVICES, apikey)
                return True

        return await self.db.run(job, retry=False)

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Delete one device and announce its apikey."""
        if not _clean(tenant, device_id):
            return False

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                apikey = await conn.fetchval(_DEL_DEVICE, tenant, device_id)
                if apikey is None:
                    return False
                if apikey:
                    await announce(conn, TOPIC_DEVICES, apikey)
                return True

        return await self.db.run(job, retry=False)

    async def touch(self, seen: Sequence[tuple[str, str, str]]) -> None:
        """One statement for the whole batch."""
        rows = [s for s in seen if _clean(*s)]
        if rows:
            columns = [list(c) for c in zip(*rows, strict=True)]
            await self.db.run(lambda c: c.execute(_TOUCH, *columns))

    async def add_dead_letters(self, letters: Sequence[DeadLetter], keep: int) -> None:
        """Append in one statement, then trim to the newest `keep`."""
        rows = [tuple(_nul_free(v) for v in (x.at, x.tenant, x.apikey, x.device_id,
                                               x.transport, x.reason, x.detail, x.payload))
                for x in letters]
        if not rows:
            return
        columns = [list(c) for c in zip(*rows, strict=True)]

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(_ADD_LETTERS, *columns)
                await conn.execute(_TRIM, keep)

        await self.db.run(job, retry=False)

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Newest first."""
        clauses, params = _letter_filter(query)
        sql = f"SELECT {_L} FROM iot_dead_letters"  # noqa: S608
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY seq DESC LIMIT ${len(params) + 1}"
        rows = await self.db.run(lambda c: c.fetch(sql, *params, query.limit))
        return [DeadLetter(seq=r[0], at=r[1], tenant=r[2], apikey=r[3], device_id=r[4],
                           transport=r[5], reason=r[6], detail=r[7], payload=r[8])
                for r in rows]


def _device_row(d: Device) -> tuple[Any, ...]:
    return (d.tenant, d.device_id, d.service_path, d.apikey, d.entity_name, d.entity_type,
            orjson.dumps(d.body).decode(), d.created_at, d.last_seen)


def _nul_free(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\ufffd")


def _letter_filter(query: DeadLetterQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.tenants is not None:
        params.append([_nul_free(t) for t in query.tenants if t is not None])
        clause = f"tenant = ANY(${len(params)}::text[])"
        if None in query.tenants:
            clause = f"({clause} OR tenant IS NULL)"
        clauses.append(clause)
    for column, value in (("device_id", query.device_id), ("reason", query.reason)):
        if value is not None:
            params.append(_nul_free(value))
            clauses.append(f"{column} = ${len(params)}")
    return clauses, params
