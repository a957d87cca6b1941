"""Hourly rollups of PostgreSQL histories: kept up to date with the instances, read by
aggregations.

New instances are added to their hours by the write statement itself (`ADD_CTE`, a
data-modifying CTE over the instances it inserts); a change that removes or moves instances
(instance PATCH or DELETE, retention) recomputes the hours it touched. Deleting a series
cascades to its rollups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from urbis.context.temporal_agg import SLOT
from urbis.storage.postgres.qsql import Params

# Appended to a WITH whose `ins` CTE returns the inserted instances' sid, observed_at, num,
# deleted_at.
ADD_CTE = f"""
rol AS (
    INSERT INTO temporal_rollups AS r (sid, slot, n_total, n_num, s1, s2, lo, hi, first_at,
        last_at)
    SELECT sid, floor(observed_at / {SLOT}.0)::bigint, count(*), count(num), sum(num),
        sum(num * num), min(num), max(num), min(observed_at), max(observed_at)
    FROM ins WHERE deleted_at IS NULL GROUP BY 1, 2
    ON CONFLICT (sid, slot) DO UPDATE SET
        n_total = r.n_total + excluded.n_total,
        n_num = r.n_num + excluded.n_num,
        s1 = CASE WHEN excluded.s1 IS NULL THEN r.s1 ELSE coalesce(r.s1, 0) + excluded.s1 END,
        s2 = CASE WHEN excluded.s2 IS NULL THEN r.s2 ELSE coalesce(r.s2, 0) + excluded.s2 END,
        lo = LEAST(r.lo, excluded.lo),
        hi = GREATEST(r.hi, excluded.hi),
        first_at = LEAST(r.first_at, excluded.first_at),
        last_at = GREATEST(r.last_at, excluded.last_at)
)"""  # noqa: S608
_DELETE = ("DELETE FROM temporal_rollups r USING unnest($1::bigint[], $2::bigint[]) "
           "AS p(sid, slot) WHERE r.sid = p.sid AND r.slot = p.slot")
_RECOMPUTE = f"""
INSERT INTO temporal_rollups (sid, slot, n_total, n_num, s1, s2, lo, hi, first_at, last_at)
SELECT p.sid, p.slot, count(*), count(i.num), sum(i.num), sum(i.num * i.num), min(i.num),
    max(i.num), min(i.observed_at), max(i.observed_at)
FROM unnest($1::bigint[], $2::bigint[]) AS p(sid, slot)
JOIN temporal_instances i ON i.sid = p.sid AND i.observed_at >= p.slot * {SLOT}
    AND i.observed_at < (p.slot + 1) * {SLOT} AND i.deleted_at IS NULL
GROUP BY p.sid, p.slot
"""  # noqa: S608


async def recompute(conn: asyncpg.Connection, touched: Iterable[tuple[int, int]]) -> None:
    """Recompute the hours of (series, observed time) pairs (inside a transaction)."""
    pairs = sorted({(sid, at // SLOT) for sid, at in touched})
    if pairs:
        sids, slots = [p[0] for p in pairs], [p[1] for p in pairs]
        await conn.execute(_DELETE, sids, slots)
        await conn.execute(_RECOMPUTE, sids, slots)


def aggregate_sql(sids: list[int], origin: int, period: int, low: int | None,
                  high: int | None) -> tuple[str, list[Any]]:
    """Per-bucket rows (as the instance aggregation's) from the rollups of whole hours."""
    params = Params()
    bucket = "0"
    if period:
        bucket = (f"(slot * {SLOT} - {params.add(origin, 'bigint')}) / "
                  f"{params.add(period, 'bigint')}")
    cond = f"sid = ANY({params.add(sids, 'bigint[]')})"
    if low is not None:
        cond += f" AND slot >= {params.add(low // SLOT, 'bigint')}"
    if high is not None:
        cond += f" AND slot < {params.add(high // SLOT, 'bigint')}"
    sql = (f"SELECT sid, {bucket} AS b, sum(n_total)::bigint, 0, sum(n_num)::bigint, sum(s1), "  # noqa: S608
           f"min(lo), max(hi), sum(s2), min(first_at), max(last_at) FROM temporal_rollups "
           f"WHERE {cond} GROUP BY sid, b ORDER BY sid, b")
    return sql, params.values
