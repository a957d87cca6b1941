"""Instance pages cut to one time range, aggregates per period, hourly rollups (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from urbis.context.model import Instance
from urbis.context.temporal import AGGR_METHODS, TimeFilter


def clip(series: list[list[Instance]], limit: int, descending: bool
         ) -> tuple[list[list[Instance]], tuple[int, int] | None]:
    """Cut instance lists (each in fetch order, "@t" their time) to one common time range.

    A list longer than `limit` is truncated; then every list keeps only the instances up to
    the earliest cut (the latest with `descending`, i.e. lastN), so the response covers one
    range of time for every attribute, and that range is returned (else None). Lists come
    back in ascending time order.
    """
    cut_at = [s[limit - 1]["@t"] for s in series if len(s) > limit]
    if not cut_at:
        kept = series
        truncated = None
    elif descending:
        cut = max(cut_at)
        kept = [[i for i in s[:limit] if i["@t"] >= cut] for s in series]
    else:
        cut = min(cut_at)
        kept = [[i for i in s[:limit] if i["@t"] <= cut] for s in series]
    if descending:
        kept = [s[::-1] for s in kept]
    if cut_at:
        times = [i["@t"] for s in kept for i in s]
        truncated = (min(times), max(times))
    return kept, truncated


def aggregate_values(methods: Sequence[str], time: TimeFilter, period: int,
                     rows: Sequence[Sequence[Any]]) -> dict[str, list[tuple[Any, int, int]]]:
    """Aggregates per method from per-bucket rows (bucket, totalCount, distinctCount, count of
    numbers, sum, min, max, sum of squares, first time, last time)."""
    origin = time.time_at if time.timerel in ("after", "between") and time.time_at else 0
    out: dict[str, list[tuple[Any, int, int]]] = {m: [] for m in methods}
    for bucket, total, distinct, n, total_sum, low, high, sumsq, first, last in rows:
        if period:
            start = origin + int(bucket) * period
            end = start + period
        else:
            start = origin if time.timerel in ("after", "between") else int(first)
            end = time.end_time_at or (time.time_at if time.timerel == "before" else None) \
                or int(last)
        values: dict[str, Any] = {"totalCount": total, "distinctCount": distinct}
        if n:
            mean = total_sum / n
            values.update(sum=_number(total_sum), avg=mean, min=_number(low),
                          max=_number(high), sumsq=_number(sumsq),
                          stddev=math.sqrt(max(0.0, sumsq / n - mean * mean)))
        for method in methods:
            if method in values:
                out[method].append((values[method], start, end))
    return out


def _number(value: Any) -> Any:
    """A float that is a whole number as an int (sums of integer readings stay integers)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


SLOT = 3_600_000_000  # the hour: the time unit of rollups
_ROLLUP_METHODS = frozenset(AGGR_METHODS) - {"distinctCount"}
Rollup = tuple[Any, int, int, int, float | None, float | None, float | None, float | None,
               int, int]


def rollups_apply(time: TimeFilter, period: int, methods: Sequence[str]) -> bool:
    """Whether hourly rollups answer an aggregation exactly: observedAt, whole hours."""
    low, high = time.bounds()
    origin = time.time_at if time.timerel in ("after", "between") else 0
    return (time.timeproperty == "observedAt" and period % SLOT == 0
            and all(b is None or b % SLOT == 0 for b in (low, high, origin))
            and set(methods) <= _ROLLUP_METHODS)


def rollups(rows: Sequence[tuple[Any, int, float | None]]) -> list[Rollup]:
    """(series, observed time, number or None) of new instances summed per series and hour:
    (series, slot, count, numeric count, sum, sum of squares, min, max, first, last)."""
    sums: dict[tuple[Any, int], list[Any]] = {}
    for sid, at, num in rows:
        acc = sums.get((sid, at // SLOT))
        if acc is None:
            acc = sums[(sid, at // SLOT)] = [0, 0, None, None, None, None, at, at]
        acc[0] += 1
        acc[6], acc[7] = min(acc[6], at), max(acc[7], at)
        if num is not None:
            acc[1] += 1
            acc[2] = num if acc[2] is None else acc[2] + num
            acc[3] = num * num if acc[3] is None else acc[3] + num * num
            acc[4] = num if acc[4] is None else min(acc[4], num)
            acc[5] = num if acc[5] is None else max(acc[5], num)
    return [(sid, slot, *acc) for (sid, slot), acc in sums.items()]
