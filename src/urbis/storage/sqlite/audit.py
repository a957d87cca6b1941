"""AuditStore on SQLite: the `audit_log` and `audit_chain` tables of the entity store's file.

The journal appends one record per write batch inside the writer's transaction (the store
runs it in a copy of the caller's context, so `current_call` says who wrote). With one
writer, records are sealed as they are inserted: the head of the chain is read and moved
in the same transaction (a rolled-back batch rolls its move back too), which costs far
less than sealing them later with an UPDATE each. `seal` still chains any record left
unsealed; purging is a writer job too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from urbis.context.actor import current_call
from urbis.context.audit import AuditFilter, AuditRecord, ChainState, batch_record, seal
from urbis.storage.base import Applied
from urbis.storage.sqlite.db import Database

COLUMNS = ("seq, at, tenant, principal, roles, client, request_id, operation, decision, "
           "reason, entity_ids, entity_count, attributes, chain_pos, hash")
_INSERT = ("INSERT INTO audit_log (at, tenant, principal, roles, client, request_id, "
           "operation, decision, reason, entity_ids, entity_count, attributes, seq, "
           "chain_pos, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_HEAD = ("SELECT (SELECT head_pos FROM audit_chain), (SELECT head_hash FROM audit_chain), "
         "(SELECT max(seq) FROM audit_log)")
_UNSEALED = f"SELECT {COLUMNS} FROM audit_log WHERE hash IS NULL ORDER BY seq LIMIT ?"  # noqa: S608
_ANY_UNSEALED = "SELECT 1 FROM audit_log WHERE hash IS NULL LIMIT 1"
_CHAIN = (f"SELECT {COLUMNS} FROM audit_log WHERE chain_pos > ? "  # noqa: S608
          "ORDER BY chain_pos LIMIT ?")
_STATE = "SELECT anchor_pos, anchor_hash, anchor_at, head_pos, head_hash FROM audit_chain"
_SET_HEAD = ("INSERT INTO audit_chain VALUES (1, 0, '', NULL, ?, ?) ON CONFLICT (id) "
             "DO UPDATE SET head_pos = excluded.head_pos, head_hash = excluded.head_hash")
_MOVE_HEAD = "UPDATE audit_chain SET head_pos = ?, head_hash = ? WHERE id = 1"
_SET_ANCHOR = ("INSERT INTO audit_chain VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
               "SET anchor_pos = excluded.anchor_pos, anchor_hash = excluded.anchor_hash, "
               "anchor_at = excluded.anchor_at")


def values(r: AuditRecord) -> tuple[Any, ...]:
    """The _INSERT parameters of a record."""
    return (r.at, r.tenant, r.principal, orjson.dumps(r.roles).decode(), r.client,
            r.request_id, r.operation, r.decision, r.reason,
            orjson.dumps(r.entity_ids).decode(), r.entity_count,
            orjson.dumps(r.attributes).decode())


def decode(row: Sequence[Any]) -> AuditRecord:
    """A row in COLUMNS order."""
    return AuditRecord(seq=row[0], at=row[1], tenant=row[2], principal=row[3],
                       roles=orjson.loads(row[4]), client=row[5], request_id=row[6],
                       operation=row[7], decision=row[8], reason=row[9],
                       entity_ids=orjson.loads(row[10]), entity_count=row[11],
                       attributes=orjson.loads(row[12]), chain_pos=row[13], hash=row[14])


def where(selection: AuditFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter (every value a parameter)."""
    clauses: list[str] = ["seq > ?"]
    params: list[Any] = [selection.after_seq]
    if selection.tenants is not None:
        tenants = list(selection.tenants)
        clauses.append(f"tenant IN ({','.join('?' * len(tenants))})" if tenants else "0")
        params += tenants
    for column in ("principal", "operation", "decision"):
        value = getattr(selection, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if selection.entity_id is not None:
        clauses.append("EXISTS (SELECT 1 FROM json_each(audit_log.entity_ids) WHERE value = ?)")
        params.append(selection.entity_id)
    if selection.since is not None:
        clauses.append("at >= ?")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("at < ?")
        params.append(selection.until)
    return " AND ".join(clauses), params


def read_state(conn: sqlite3.Connection) -> ChainState:
    """The chain's anchor and head (zero when the row is missing)."""
    row = conn.execute(_STATE).fetchone()
    state = ChainState() if row is None else ChainState(row[0], row[1], row[3], row[4],
                                                        anchor_at=row[2])
    return state


def insert_sealed(conn: sqlite3.Connection, record: AuditRecord) -> None:
    """Insert a record as the next of the chain (on the writer, in its transaction)."""
    head_pos, head_hash, last_seq = conn.execute(_HEAD).fetchone()
    state = ChainState(head_pos=head_pos or 0, head_hash=head_hash or "")
    record.seq = max(last_seq or 0, state.head_pos) + 1
    seal([record], state)
    conn.execute(_INSERT, (*values(record), record.seq, record.chain_pos, record.hash))
    if not conn.execute(_MOVE_HEAD, (state.head_pos, state.head_hash)).rowcount:
        conn.execute(_SET_HEAD, (state.head_pos, state.head_hash))


class SqliteAuditStore:
    """The audit log in the SQLite file; every write goes through its writer thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def journal(self, conn: sqlite3.Connection, tenant: str, applied: list[Applied]) -> None:
        """The entity store's journal: one record for the batch, in its transaction."""
        insert_sealed(conn, batch_record(current_call.get(), tenant, applied))

    async def append(self, record: AuditRecord) -> None:
        """One record, in its own write."""
        await self.db.write(lambda conn: insert_sealed(conn, record))

    async def query(self, selection: AuditFilter) -> list[AuditRecord]:
        """Records matching the filter, in seq order."""
        clause, params = where(selection)
        sql = f"SELECT {COLUMNS} FROM audit_log WHERE {clause} ORDER BY seq LIMIT ? OFFSET ?"  # noqa: S608
        rows = await self.db.read(
            lambda c: c.execute(sql, [*params, selection.limit, selection.offset]).fetchall())
        return [decode(r) for r in rows]

    async def seal(self, limit: int = 1000) -> int:
        """Chain the oldest unsealed records (a writer job: one sealer)."""
        if not self.db.read_inline(lambda c: c.execute(_ANY_UNSEALED).fetchone()):
            return 0  # the usual case: no write transaction at all

        def job(conn: sqlite3.Connection) -> int:
            rows = conn.execute(_UNSEALED, (limit,)).fetchall()
            if not rows:
                return 0
            state = read_state(conn)
            sealed = seal([decode(r) for r in rows], state)
            conn.executemany("UPDATE audit_log SET chain_pos = ?, hash = ? WHERE seq = ?",
                             [(r.chain_pos, r.hash, r.seq) for r in sealed])
            conn.execute(_SET_HEAD, (state.head_pos, state.head_hash))
            return len(sealed)

        return await self.db.write(job)

    async def chain(self, after_pos: int, limit: int) -> list[AuditRecord]:
        """Sealed records after a chain position, in chain order."""
        rows = await self.db.read(lambda c: c.execute(_CHAIN, (after_pos, limit)).fetchall())
        return [decode(r) for r in rows]

    async def state(self) -> ChainState:
        """Anchor, head and the unsealed count."""

        def job(conn: sqlite3.Connection) -> ChainState:
            state = read_state(conn)
            state.unsealed = conn.execute(
                "SELECT count(*) FROM audit_log WHERE hash IS NULL").fetchone()[0]
            return state

        return await self.db.read(job)

    async def purge(self, before: str, batch: int = 5000) -> int:
        """Delete up to `batch` sealed records older than `before`, moving the anchor."""

        def job(conn: sqlite3.Connection) -> int:
            state = read_state(conn)
            target = conn.execute("SELECT max(chain_pos) FROM audit_log WHERE at < ? AND "
                                  "chain_pos IS NOT NULL", (before,)).fetchone()[0]
            if target is None or target <= state.anchor_pos:
                return 0
            upto = min(target, state.anchor_pos + batch)
            last = conn.execute("SELECT hash, at FROM audit_log WHERE chain_pos = ?",
                                (upto,)).fetchone()
            if last is None:
                raise RuntimeError(f"audit record {upto} of the chain is missing: run "
                                   "`urbis audit verify`")
            conn.execute(_SET_ANCHOR, (upto, last[0], last[1], state.head_pos,
                                       state.head_hash))
            return int(conn.execute("DELETE FROM audit_log WHERE chain_pos <= ?",
                                    (upto,)).rowcount)

        return await self.db.write(job)
