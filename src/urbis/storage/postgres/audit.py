"""AuditStore on PostgreSQL: the `audit_log` and `audit_chain` tables on the entity pool.

The journal appends one record per write batch with one INSERT (on one-entity batches it
becomes part of the entity's write statement, see urbis.storage.postgres.single). The sealer
of whichever worker holds a transaction-level advisory lock chains what is unsealed; the
others skip their turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from urbis.context.actor import current_call
from urbis.context.audit import AuditFilter, AuditRecord, ChainState, batch_record, seal
from urbis.storage.base import Applied
from urbis.storage.postgres.db import Database

# pg_advisory_xact_lock key of the sealer ("urbisa").
SEAL_LOCK = 0x757262697361
COLUMNS = ("seq, at, tenant, principal, roles, client, request_id, operation, decision, "
           "reason, entity_ids, entity_count, attributes, chain_pos, hash")
_INSERT = ("INSERT INTO audit_log (at, tenant, principal, roles, client, request_id, "
           "operation, decision, reason, entity_ids, entity_count, attributes) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
_UNSEALED = f"SELECT {COLUMNS} FROM audit_log WHERE hash IS NULL ORDER BY seq LIMIT $1"  # noqa: S608
_ANY_UNSEALED = "SELECT EXISTS (SELECT 1 FROM audit_log WHERE hash IS NULL)"
_CHAIN = (f"SELECT {COLUMNS} FROM audit_log WHERE chain_pos > $1 "  # noqa: S608
          "ORDER BY chain_pos LIMIT $2")
_STATE = "SELECT anchor_pos, anchor_hash, anchor_at, head_pos, head_hash FROM audit_chain"
_SEALED = ("UPDATE audit_log a SET chain_pos = u.pos, hash = u.hash "
           "FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(seq, pos, hash) "
           "WHERE a.seq = u.seq")
_SET_HEAD = ("INSERT INTO audit_chain VALUES (1, 0, '', NULL, $1, $2) ON CONFLICT (id) "
             "DO UPDATE SET head_pos = excluded.head_pos, head_hash = excluded.head_hash")
_SET_ANCHOR = ("INSERT INTO audit_chain VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) "
               "DO UPDATE SET anchor_pos = excluded.anchor_pos, "
               "anchor_hash = excluded.anchor_hash, anchor_at = excluded.anchor_at")


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000 (a reason may quote what a caller sent).
    return value.replace("\x00", "\ufffd") if value is not None else None


def values(r: AuditRecord) -> list[Any]:
    """The _INSERT parameters of a record."""
    return [r.at, _text(r.tenant), _text(r.principal), orjson.dumps(r.roles).decode(),
            _text(r.client), _text(r.request_id), _text(r.operation), r.decision,
            _text(r.reason), orjson.dumps(r.entity_ids).decode(), r.entity_count,
            orjson.dumps(r.attributes).decode()]


def decode(row: Sequence[Any]) -> AuditRecord:
    """A row in COLUMNS order."""
    return AuditRecord(seq=row[0], at=row[1], tenant=row[2], principal=row[3],
                       roles=orjson.loads(row[4]), client=row[5], request_id=row[6],
                       operation=row[7], decision=row[8], reason=row[9],
                       entity_ids=orjson.loads(row[10]), entity_count=row[11],
                       attributes=orjson.loads(row[12]), chain_pos=row[13], hash=row[14])


def where(selection: AuditFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter (every value a parameter)."""
    params: list[Any] = [selection.after_seq]
    clauses = ["seq > $1"]

    def add(template: str, value: Any) -> None:
        params.append(value)
        clauses.append(template.format(f"${len(params)}"))

    if selection.tenants is not None:
        add("tenant = ANY({}::text[])", [_text(t) for t in selection.tenants])
    for column in ("principal", "operation", "decision"):
        value = getattr(selection, column)
        if value is not None:
            add(column + " = {}", _text(value))
    if selection.entity_id is not None:
        add("entity_ids::jsonb ? {}", _text(selection.entity_id))
    if selection.since is not None:
        add("at >= {}", selection.since)
    if selection.until is not None:
        add("at < {}", selection.until)
    return " AND ".join(clauses), params


async def read_state(conn: asyncpg.Connection) -> ChainState:
    """The chain's anchor and head (zero when the row is missing)."""
    row = await conn.fetchrow(_STATE)
    return ChainState() if row is None else ChainState(row[0], row[1], row[3], row[4],
                                                       anchor_at=row[2])


class PostgresAuditStore:
    """The audit log on the entity store's pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def journal(self, conn: asyncpg.Connection, tenant: str, applied: list[Applied]
                      ) -> None:
        """The entity store's journal: one record for the batch, in its transaction."""
        await conn.execute(_INSERT, *values(batch_record(current_call.get(), tenant, applied)))

    async def append(self, record: AuditRecord) -> None:
        """One record, in its own transaction."""
        await self.db.run(lambda c: c.execute(_INSERT, *values(record)), retry=False)

    async def query(self, selection: AuditFilter) -> list[AuditRecord]:
        """Records matching the filter, in seq order."""
        clause, params = where(selection)
        n = len(params)
        sql = (f"SELECT {COLUMNS} FROM audit_log WHERE {clause} "  # noqa: S608
               f"ORDER BY seq LIMIT ${n + 1} OFFSET ${n + 2}")
        rows = await self.db.run(
            lambda c: c.fetch(sql, *params, selection.limit, selection.offset))
        return [decode(r) for r in rows]

    async def seal(self, limit: int = 1000) -> int:
        """Chain the oldest unsealed records, unless another worker is sealing."""

        async def job(conn: asyncpg.Connection) -> int:
            if not await conn.fetchval(_ANY_UNSEALED):
                return 0  # the usual case: one look-up on the partial index
            async with conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK):
                    return 0
                rows = await conn.fetch(_UNSEALED, limit)
                if not rows:
                    return 0
                state = await read_state(conn)
                sealed = seal([decode(r) for r in rows], state)
                await conn.execute(_SEALED, [r.seq for r in sealed],
                                   [r.chain_pos for r in sealed], [r.hash for r in sealed])
                await conn.execute(_SET_HEAD, state.head_pos, state.head_hash)
                return len(sealed)

        return await self.db.run(job, retry=False)

    async def chain(self, after_pos: int, limit: int) -> list[AuditRecord]:
        """Sealed records after a chain position, in chain order."""
        return [decode(r) for r in await self.db.run(
            lambda c: c.fetch(_CHAIN, after_pos, limit))]

    async def state(self) -> ChainState:
        """Anchor, head and the unsealed count."""

        async def job(conn: asyncpg.Connection) -> ChainState:
            state = await read_state(conn)
            state.unsealed = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE hash IS NULL")
            return state

        return await self.db.run(job)

    async def purge(self, before: str, batch: int = 5000) -> int:
        """Delete up to `batch` sealed records older than `before`, moving the anchor."""

        async def job(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK):
                    return 0
                state = await read_state(conn)
                target = await conn.fetchval(
                    "SELECT max(chain_pos) FROM audit_log WHERE at < $1 AND "
                    "chain_pos IS NOT NULL", before)
                if target is None or target <= state.anchor_pos:
                    return 0
                upto = min(target, state.anchor_pos + batch)
                last = await conn.fetchrow("SELECT hash, at FROM audit_log WHERE chain_pos = $1",
                                           upto)
                if last is None:
                    raise RuntimeError(f"audit record {upto} of the chain is missing: run "
                                       "`urbis audit verify`")
                await conn.execute(_SET_ANCHOR, upto, last[0], last[1], state.head_pos,
                                   state.head_hash)
                status = await conn.execute("DELETE FROM audit_log WHERE chain_pos <= $1", upto)
                return int(status.split()[-1])

        return await self.db.run(job, retry=False)
