"""Hourly rollups of SQLite histories: kept up to date with the instances, read by aggregations.

New instances are summed per series and hour in Python and added with one upsert each; a
change that removes or moves instances (instance PATCH or DELETE, retention) recomputes the
hours it touched from the instances. Deleting a series cascades to its rollups.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from urbis.context.temporal_agg import SLOT, rollups

_ADD = """
INSERT INTO temporal_rollups (sid, slot, n_total, n_num, s1, s2, lo, hi, first_at, last_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sid, slot) DO UPDATE SET
    n_total = n_total + excluded.n_total,
    n_num = n_num + excluded.n_num,
    s1 = CASE WHEN excluded.s1 IS NULL THEN s1 ELSE coalesce(s1, 0) + excluded.s1 END,
    s2 = CASE WHEN excluded.s2 IS NULL THEN s2 ELSE coalesce(s2, 0) + excluded.s2 END,
    lo = coalesce(min(lo, excluded.lo), lo, excluded.lo),
    hi = coalesce(max(hi, excluded.hi), hi, excluded.hi),
    first_at = min(first_at, excluded.first_at),
    last_at = max(last_at, excluded.last_at)
"""
_RECOMPUTE = """
INSERT INTO temporal_rollups (sid, slot, n_total, n_num, s1, s2, lo, hi, first_at, last_at)
SELECT ?, ?, count(*), count(num), sum(num), sum(num * num), min(num), max(num),
    min(observed_at), max(observed_at)
FROM temporal_instances WHERE sid = ? AND observed_at >= ? AND observed_at < ?
    AND deleted_at IS NULL
HAVING count(*) > 0
"""


def add(conn: sqlite3.Connection, rows: Sequence[tuple[int, int, float | None]]) -> None:
    """Add new (series, observed time, number or None) instances to their hours."""
    if rows:
        conn.executemany(_ADD, rollups(rows))


def recompute(conn: sqlite3.Connection, touched: Iterable[tuple[int, int]]) -> None:
    """Recompute the hours of (series, observed time) pairs from their instances."""
    for sid, slot in sorted({(sid, at // SLOT) for sid, at in touched}):
        conn.execute("DELETE FROM temporal_rollups WHERE sid = ? AND slot = ?", (sid, slot))
        conn.execute(_RECOMPUTE, (sid, slot, sid, slot * SLOT, (slot + 1) * SLOT))


def aggregate(conn: sqlite3.Connection, sids: list[int], origin: int, period: int,
              low: int | None, high: int | None) -> list[Any]:
    """Per-bucket rows (as the instance aggregation's) from the rollups of whole hours."""
    bucket = "(slot * ? - ?) / ?" if period else "0"
    params: list[Any] = [SLOT, origin, period] if period else []
    params.extend(sids)
    cond = ""
    if low is not None:
        cond += " AND slot >= ?"
        params.append(low // SLOT)
    if high is not None:
        cond += " AND slot < ?"
        params.append(high // SLOT)
    sql = (f"SELECT sid, {bucket} AS b, sum(n_total), 0, sum(n_num), sum(s1), min(lo), "  # noqa: S608
           f"max(hi), sum(s2), min(first_at), max(last_at) FROM temporal_rollups "
           f"WHERE sid IN ({','.join('?' * len(sids))}){cond} GROUP BY sid, b ORDER BY sid, b")
    return conn.execute(sql, params).fetchall()
