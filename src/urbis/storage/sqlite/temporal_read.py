"""Temporal queries on SQLite: select a page of entity histories, then their instances.

Entity filters run on `temporal_entities` (ids, idPattern, type over the JSON `types`,
attributes over `temporal_series`); q, scopeQ and geo-queries select, through the entity
query compiler, the entities whose current state matches. Instances come per series as an
index range scan with a LIMIT; aggregations are one GROUP BY over time buckets on the
covering index (sid, observed_at, num, deleted_at).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from urbis.context.model import Instance
from urbis.context.query.types import TypeAnd, TypeName, TypeNode
from urbis.context.temporal import TimeFilter, from_micros, instance_id
from urbis.context.temporal_agg import aggregate_values, clip, rollups_apply
from urbis.storage.base import EntityQuery
from urbis.storage.sqlite import temporal_rollup
from urbis.storage.sqlite.querysql import build_query
from urbis.storage.temporal_base import Aggregate, TemporalEntity, TemporalPage, TemporalQuery

_TIME_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                 "modifiedAt": "modified_at"}
_VALUE = ("coalesce(json_extract(body, '$.value'), json_extract(body, '$.object'), "
          "json_extract(body, '$.languageMap'), json_extract(body, '$.vocab'), "
          "json_extract(body, '$.json'), json_extract(body, '$.valueList'), "
          "json_extract(body, '$.objectList'))")
_ENTITY_COLUMNS = "te.tpk, te.id, te.types, te.scopes, te.created_at, te.modified_at, te.deleted_at"


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _types(node: TypeNode) -> tuple[str, list[Any]]:
    if isinstance(node, TypeName):
        return "EXISTS (SELECT 1 FROM json_each(te.types) WHERE value = ?)", [node.iri]
    parts = [_types(item) for item in node.items]
    sep = " AND " if isinstance(node, TypeAnd) else " OR "
    return "(" + sep.join(p[0] for p in parts) + ")", [v for p in parts for v in p[1]]


def entity_filter(tenant: str, q: EntityQuery) -> tuple[str, list[Any]]:
    """The WHERE condition on `temporal_entities te` of a query's entity filters."""
    clauses, params = ["te.tenant = ?"], [tenant]
    if q.ids:
        clauses.append(f"te.id IN ({_marks(len(q.ids))})")
        params.extend(q.ids)
    if q.id_pattern is not None:
        clauses.append("te.id REGEXP ?")
        params.append(q.id_pattern)
    if q.type_expr is not None:
        sql, values = _types(q.type_expr)
        clauses.append(sql)
        params.extend(values)
    if q.attrs:
        clauses.append("EXISTS (SELECT 1 FROM temporal_series s WHERE s.tpk = te.tpk AND "  # noqa: S608
                       f"s.attr IN ({_marks(len(q.attrs))}))")
        params.extend(q.attrs)
    if q.q is not None or q.scope_q is not None or q.geo is not None:
        current = EntityQuery(q=q.q, scope_q=q.scope_q, geo=q.geo)
        where, values, _, _ = build_query(tenant, current)
        clauses.append(f"te.id IN (SELECT e.id FROM entities e WHERE {where})")  # noqa: S608
        params.extend(values)
    return " AND ".join(clauses), params


def run_query(conn: sqlite3.Connection, tenant: str, query: TemporalQuery) -> TemporalPage:
    """A page of entity histories with their instances or aggregates."""
    where, params = entity_filter(tenant, query.entities)
    eq = query.entities
    rows = conn.execute(f"SELECT {_ENTITY_COLUMNS} FROM temporal_entities te "  # noqa: S608
                        f"WHERE {where} ORDER BY te.id LIMIT ? OFFSET ?",
                        [*params, eq.limit, eq.offset]).fetchall() if eq.limit > 0 else []
    count = None
    if eq.count:
        count = conn.execute(f"SELECT count(*) FROM temporal_entities te WHERE {where}",  # noqa: S608
                             params).fetchone()[0]
    entities = {r[0]: _entity(r) for r in rows}
    series = _series(conn, list(entities), eq.attrs)
    page = TemporalPage(list(entities.values()), count)
    if query.aggr_methods:
        _aggregate(conn, query, series, entities)
    else:
        page.truncated = _instances(conn, query, series, entities)
    return page


def _entity(row: Any) -> TemporalEntity:
    return TemporalEntity(id=row[1], types=orjson.loads(row[2]),
                          scopes=orjson.loads(row[3]) if row[3] else None,
                          created_at=row[4], modified_at=row[5], deleted_at=row[6])


def _series(conn: sqlite3.Connection, tpks: list[int], attrs: Any
            ) -> list[tuple[int, int, str, str]]:
    if not tpks:
        return []
    sql = (f"SELECT sid, tpk, attr, dataset_id FROM temporal_series WHERE tpk IN "  # noqa: S608
           f"({_marks(len(tpks))})")
    params: list[Any] = list(tpks)
    if attrs:
        sql += f" AND attr IN ({_marks(len(attrs))})"
        params.extend(attrs)
    return conn.execute(sql + " ORDER BY sid", params).fetchall()


def time_condition(time: TimeFilter, column: str) -> tuple[str, list[Any]]:
    """The range condition of a time filter on a column."""
    low, high = time.bounds()
    sql, params = "", []
    if low is not None:
        sql += f" AND {column} >= ?"
        params.append(low)
    if high is not None:
        sql += f" AND {column} < ?"
        params.append(high)
    return sql, params


def _instances(conn: sqlite3.Connection, query: TemporalQuery, series: list[Any],
               entities: dict[int, TemporalEntity]) -> tuple[int, int] | None:
    col = _TIME_COLUMNS[query.time.timeproperty]
    cond, params = time_condition(query.time, col)
    last_n = query.time.last_n
    descending = last_n is not None
    fetch = min(last_n, query.instance_limit + 1) if last_n is not None \
        else query.instance_limit + 1
    order = "DESC" if descending else "ASC"
    sql = (f"SELECT ipk, {col}, created_at, modified_at, deleted_at, body "  # noqa: S608
           f"FROM temporal_instances WHERE sid = ?{cond} ORDER BY {col} {order}, ipk {order} "
           "LIMIT ?")
    fetched: list[tuple[Any, list[Instance]]] = []
    for sid, tpk, attr, _ds in series:
        rows = conn.execute(sql, [sid, *params, fetch]).fetchall()
        fetched.append(((tpk, attr), [_instance(r) for r in rows]))
    kept, truncated = clip([f[1] for f in fetched], query.instance_limit, descending)
    for ((tpk, attr), _), instances in zip(fetched, kept, strict=True):
        if instances:
            entities[tpk].instances.setdefault(attr, []).extend(instances)
    return truncated


def _instance(row: Any) -> Instance:
    inst: Instance = orjson.loads(row[5])
    inst["instanceId"] = instance_id(row[0])
    inst["createdAt"] = from_micros(row[2])
    inst["modifiedAt"] = from_micros(row[3])
    if row[4] is not None:
        inst["deletedAt"] = from_micros(row[4])
    inst["@t"] = row[1]
    return inst


def _aggregate(conn: sqlite3.Connection, query: TemporalQuery, series: list[Any],
               entities: dict[int, TemporalEntity]) -> None:
    if not series:
        return
    col = _TIME_COLUMNS[query.time.timeproperty]
    origin = query.time.time_at if query.time.timerel in ("after", "between") else 0
    assert origin is not None
    sids = [s[0] for s in series]
    if rollups_apply(query.time, query.aggr_period, query.aggr_methods):
        low, high = query.time.bounds()
        rows = temporal_rollup.aggregate(conn, sids, origin, query.aggr_period, low, high)
    else:
        rows = _from_instances(conn, query, sids, col, origin)
    first = conn.execute(
        "SELECT s.value, (SELECT json_extract(i.body, '$.type') FROM temporal_instances i "
        "WHERE i.sid = s.value ORDER BY i.observed_at LIMIT 1) FROM json_each(?) s",
        [orjson.dumps(sids).decode()]).fetchall()
    fill_aggregates(query, series, dict(first), rows, entities)


def _from_instances(conn: sqlite3.Connection, query: TemporalQuery, sids: list[int], col: str,
                    origin: int) -> list[Any]:
    """Per-bucket rows computed from the instances (any time property, bound and period)."""
    cond, params = time_condition(query.time, col)
    bucket = f"({col} - ?) / ?" if query.aggr_period else "0"
    bucket_params = [origin, query.aggr_period] if query.aggr_period else []
    distinct = f"count(DISTINCT {_VALUE})" if "distinctCount" in query.aggr_methods else "0"
    sql = (f"SELECT sid, {bucket} AS b, count(*), {distinct}, count(num), sum(num), "  # noqa: S608
           f"min(num), max(num), sum(num * num), min({col}), max({col}) FROM temporal_instances "
           f"WHERE sid IN ({_marks(len(sids))}) AND deleted_at IS NULL{cond} "
           "GROUP BY sid, b ORDER BY sid, b")
    return conn.execute(sql, [*bucket_params, *sids, *params]).fetchall()


def fill_aggregates(query: TemporalQuery, series: list[Any], types: dict[int, str],
                    rows: list[Any], entities: dict[Any, TemporalEntity]) -> None:
    """Turn (sid, bucket, count, distinct, n, sum, min, max, sumsq, first, last) rows into
    each entity's Aggregates."""
    by_sid: dict[int, list[Any]] = {}
    for row in rows:
        by_sid.setdefault(row[0], []).append(row)
    for sid, tpk, attr, ds in series:
        found = by_sid.get(sid)
        if not found:
            continue
        agg = Aggregate(ds or None, types.get(sid) or "Property")
        agg.values = aggregate_values(query.aggr_methods, query.time, query.aggr_period,
                                      [tuple(r[1:]) for r in found])
        entities[tpk].aggregates.setdefault(attr, []).append(agg)
