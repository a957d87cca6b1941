"""DeviceStore on SQLite: the `iot_groups`, `iot_devices` and `iot_dead_letters` tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from urbis.context.devices import (
    DeadLetter,
    Device,
    ServiceGroup,
    duplicate_device,
    duplicate_group,
)
from urbis.storage.devices_base import DeadLetterQuery, Scope
from urbis.storage.sqlite.db import Database

_G = "apikey, resource, tenant, service_path, entity_type, body, created_at"
_D = "tenant, device_id, service_path, apikey, entity_name, entity_type, body, created_at, " \
     "last_seen"
_L = "seq, at, tenant, apikey, device_id, transport, reason, detail, payload"
_ADD_GROUP = f"INSERT INTO iot_groups ({_G}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_BY_APIKEY = f"SELECT {_G} FROM iot_groups WHERE apikey = ? ORDER BY resource"  # noqa: S608
_PUT_GROUP = ("UPDATE iot_groups SET entity_type = ?, body = ? "
              "WHERE apikey = ? AND resource = ? AND tenant = ?")
_DEL_GROUP = "DELETE FROM iot_groups WHERE tenant = ? AND apikey = ? AND resource = ?"
_ADD_DEVICE = f"INSERT INTO iot_devices ({_D}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_GET_DEVICE = f"SELECT {_D} FROM iot_devices WHERE tenant = ? AND device_id = ?"  # noqa: S608
_FIND_DEVICE = (f"SELECT {_D} FROM iot_devices "  # noqa: S608
                "WHERE apikey = ? AND device_id = ? AND apikey <> ''")
_PUT_DEVICE = ("UPDATE iot_devices SET service_path = ?, apikey = ?, entity_name = ?, "
               "entity_type = ?, body = ? WHERE tenant = ? AND device_id = ?")
_DEL_DEVICE = "DELETE FROM iot_devices WHERE tenant = ? AND device_id = ?"
_TOUCH = ("UPDATE iot_devices SET last_seen = ?1 WHERE tenant = ?2 AND device_id = ?3 "
          "AND (last_seen IS NULL OR last_seen < ?1)")
_ADD_LETTER = ("INSERT INTO iot_dead_letters (at, tenant, apikey, device_id, transport, "
               "reason, detail, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_TRIM = ("DELETE FROM iot_dead_letters WHERE seq <= "
         "(SELECT max(seq) FROM iot_dead_letters) - ?")


def _group(row: Sequence[Any]) -> ServiceGroup:
    return ServiceGroup(tenant=row[2], service_path=row[3], apikey=row[0], resource=row[1],
                        entity_type=row[4], body=orjson.loads(row[5]), created_at=row[6])


def _device(row: Sequence[Any]) -> Device:
    return Device(tenant=row[0], device_id=row[1], service_path=row[2], apikey=row[3],
                  entity_name=row[4], entity_type=row[5], body=orjson.loads(row[6]),
                  created_at=row[7], last_seen=row[8])


def _device_row(d: Device) -> tuple[Any, ...]:
    return (d.tenant, d.device_id, d.service_path, d.apikey, d.entity_name, d.entity_type,
            orjson.dumps(d.body).decode(), d.created_at, d.last_seen)


def _scope_where(scope: Scope) -> tuple[str, list[Any]]:
    if scope.service_path is None:
        return "tenant = ?", [scope.tenant]
    return "tenant = ? AND service_path = ?", [scope.tenant, scope.service_path]


class SqliteDeviceStore:
    """The IoT registry in the SQLite file; writes go through its writer thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_groups(self, groups: Sequence[ServiceGroup]) -> None:
        """Insert all or none."""

        def job(conn: sqlite3.Connection) -> None:
            for g in groups:
                try:
                    conn.execute(_ADD_GROUP, (g.apikey, g.resource, g.tenant, g.service_path,
                                              g.entity_type, orjson.dumps(g.body).decode(),
                                              g.created_at))
                except sqlite3.IntegrityError:
                    raise duplicate_group(g.apikey, g.resource) from None

        await self.db.write(job)

    async def groups(self, scope: Scope, apikey: str | None = None,
                     resource: str | None = None) -> tuple[list[ServiceGroup], int]:
        """A page of a scope's groups and the total."""
        where, params = _scope_where(scope)
        for column, value in (("apikey", apikey), ("resource", resource)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        page = f"SELECT {_G} FROM iot_groups WHERE {where} "  # noqa: S608
        page += "ORDER BY apikey, resource LIMIT ? OFFSET ?"
        count = f"SELECT count(*) FROM iot_groups WHERE {where}"  # noqa: S608

        def job(conn: sqlite3.Connection) -> tuple[list[ServiceGroup], int]:
            rows = conn.execute(page, [*params, scope.limit, scope.offset]).fetchall()
            return [_group(r) for r in rows], conn.execute(count, params).fetchone()[0]

        return await self.db.read(job)

    async def groups_by_apikey(self, apikey: str) -> list[ServiceGroup]:
        """An index look-up on the calling thread."""
        rows = self.db.read_inline(lambda c: c.execute(_BY_APIKEY, (apikey,)).fetchall())
        return [_group(r) for r in rows]

    async def replace_group(self, group: ServiceGroup) -> bool:
        """Update the body of a group."""
        args = (group.entity_type, orjson.dumps(group.body).decode(), group.apikey,
                group.resource, group.tenant)
        return bool(await self.db.write(lambda c: c.execute(_PUT_GROUP, args).rowcount))

    async def delete_group(self, tenant: str, apikey: str, resource: str) -> bool:
        """Delete one group."""
        args = (tenant, apikey, resource)
        return bool(await self.db.write(lambda c: c.execute(_DEL_GROUP, args).rowcount))

    async def add_devices(self, devices: Sequence[Device]) -> None:
        """Insert all or none."""

        def job(conn: sqlite3.Connection) -> None:
            for d in devices:
                try:
                    conn.execute(_ADD_DEVICE, _device_row(d))
                except sqlite3.IntegrityError:
                    raise duplicate_device(d.device_id) from None

        await self.db.write(job)

    async def get_device(self, tenant: str, device_id: str) -> Device | None:
        """A primary-key look-up on the calling thread."""
        row = self.db.read_inline(
            lambda c: c.execute(_GET_DEVICE, (tenant, device_id)).fetchone())
        return None if row is None else _device(row)

    async def find_device(self, apikey: str, device_id: str) -> Device | None:
        """An index look-up on the calling thread."""
        row = self.db.read_inline(
            lambda c: c.execute(_FIND_DEVICE, (apikey, device_id)).fetchone())
        return None if row is None else _device(row)

    async def devices(self, scope: Scope) -> tuple[list[Device], int]:
        """A page of a scope's devices and the total."""
        where, params = _scope_where(scope)
        page = f"SELECT {_D} FROM iot_devices WHERE {where} "  # noqa: S608
        page += "ORDER BY device_id LIMIT ? OFFSET ?"
        count = f"SELECT count(*) FROM iot_devices WHERE {where}"  # noqa: S608

        def job(conn: sqlite3.Connection) -> tuple[list[Device], int]:
            rows = conn.execute(page, [*params, scope.limit, scope.offset]).fetchall()
            return [_device(r) for r in rows], conn.execute(count, params).fetchone()[0]

        return await self.db.read(job)

    async def replace_device(self, device: Device) -> bool:
        """Update a device (not its last_seen)."""
        d = device
        args = (d.service_path, d.apikey, d.entity_name, d.entity_type,
                orjson.dumps(d.body).decode(), d.tenant, d.device_id)

        def job(conn: sqlite3.Connection) -> bool:
            try:
                return bool(conn.execute(_PUT_DEVICE, args).rowcount)
            except sqlite3.IntegrityError:
                raise duplicate_device(d.device_id) from None

        return await self.db.write(job)

    async def delete_device(self, tenant: str, device_id: str) -> bool:
        """Delete one device."""
        args = (tenant, device_id)
        return bool(await self.db.write(lambda c: c.execute(_DEL_DEVICE, args).rowcount))

    async def touch(self, seen: Sequence[tuple[str, str, str]]) -> None:
        """One statement for the whole batch."""
        rows = [(at, tenant, device_id) for tenant, device_id, at in seen]
        if rows:
            await self.db.write(lambda c: c.executemany(_TOUCH, rows))

    async def add_dead_letters(self, letters: Sequence[DeadLetter], keep: int) -> None:
        """Append, then trim to the newest `keep`."""
        rows = [(x.at, x.tenant, x.apikey, x.device_id, x.transport, x.reason, x.detail,
                 x.payload) for x in letters]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(_ADD_LETTER, rows)
            conn.execute(_TRIM, (keep,))

        if rows:
            await self.db.write(job)

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Newest first."""
        clauses, params = _letter_filter(query)
        sql = f"SELECT {_L} FROM iot_dead_letters"  # noqa: S608
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = await self.db.read(lambda c: c.execute(sql, [*params, query.limit]).fetchall())
        return [DeadLetter(seq=r[0], at=r[1], tenant=r[2], apikey=r[3], device_id=r[4],
                           transport=r[5], reason=r[6], detail=r[7], payload=r[8])
                for r in rows]


def _letter_filter(query: DeadLetterQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.tenants is not None:
        named = [t for t in query.tenants if t is not None]
        parts = [f"tenant IN ({', '.join('?' * len(named))})"] if named else []
        if None in query.tenants:
            parts.append("tenant IS NULL")
        clauses.append("(" + (" OR ".join(parts) or "0") + ")")
        params += named
    for column, value in (("device_id", query.device_id), ("reason", query.reason)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params
