"""Temporal queries on PostgreSQL: a page of entity histories, then their instances.

Entity filters run on `temporal_entities te` (ids, idPattern, type on the GIN-indexed `types`,
attributes through `temporal_series`); q, scopeQ and geo-queries select, through the entity
query compiler, the entities whose current state matches. Instances come per series from a
LATERAL index range scan with a LIMIT; aggregations are one GROUP BY over time buckets on the
index (sid, observed_at) INCLUDE (num, deleted_at).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from urbis.context.model import Instance
from urbis.context.temporal import TimeFilter, from_micros, instance_id
from urbis.context.temporal_agg import aggregate_values, clip, rollups_apply
from urbis.storage.base import EntityQuery
from urbis.storage.postgres import qsql
from urbis.storage.postgres.qsql import Params
from urbis.storage.postgres.querysql import build_where
from urbis.storage.postgres.regex import to_postgres
from urbis.storage.postgres.temporal_rollup import aggregate_sql
from urbis.storage.temporal_base import Aggregate, TemporalEntity, TemporalPage, TemporalQuery

_TIME_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                 "modifiedAt": "modified_at"}
_VALUE = ("COALESCE(body -> 'value', body -> 'object', body -> 'languageMap', body -> 'vocab', "
          "body -> 'json', body -> 'valueList', body -> 'objectList')")
_ENTITY_COLUMNS = "te.tpk, te.id, te.types, te.scopes, te.created_at, te.modified_at, te.deleted_at"
_SERIES = ("SELECT sid, tpk, attr, dataset_id FROM temporal_series WHERE tpk = ANY($1::bigint[]) "
           "AND ($2::text[] IS NULL OR attr = ANY($2::text[])) ORDER BY sid")
_FIRST_TYPE = ("SELECT s.sid, (SELECT i.body ->> 'type' FROM temporal_instances i "
               "WHERE i.sid = s.sid ORDER BY i.observed_at LIMIT 1) "
               "FROM unnest($1::bigint[]) AS s(sid)")


def entity_filter(tenant: str, q: EntityQuery, params: Params) -> str:
    """The WHERE condition on `temporal_entities te` of a query's entity filters."""
    clauses = [f"te.tenant = {params.name(tenant)}"]
    if q.ids:
        ids = [None if "\x00" in i else i for i in q.ids]
        clauses.append(f"te.id = ANY({params.add(ids, 'text[]')})")
    if q.id_pattern is not None:
        clauses.append(f"te.id ~ {params.add(to_postgres(q.id_pattern), 'text')}")
    if q.type_expr is not None:
        clauses.append(qsql.compile_types(q.type_expr, params, types_col="te.types"))
    if q.attrs:
        names = [None if "\x00" in a else a for a in q.attrs]
        clauses.append("EXISTS (SELECT 1 FROM temporal_series s WHERE s.tpk = te.tpk AND "  # noqa: S608
                       f"s.attr = ANY({params.add(names, 'text[]')}))")
    if q.q is not None or q.scope_q is not None or q.geo is not None:
        current = EntityQuery(q=q.q, scope_q=q.scope_q, geo=q.geo)
        where = build_where(tenant, current, params)
        clauses.append(f"te.id IN (SELECT e.id FROM entities e WHERE {where})")  # noqa: S608
    return " AND ".join(clauses)


def time_condition(time: TimeFilter, column: str, params: Params) -> str:
    """The range condition of a time filter on a column."""
    low, high = time.bounds()
    sql = ""
    if low is not None:
        sql += f" AND {column} >= {params.add(low, 'bigint')}"
    if high is not None:
        sql += f" AND {column} < {params.add(high, 'bigint')}"
    return sql


async def run_query(conn: asyncpg.Connection, tenant: str, query: TemporalQuery
                    ) -> TemporalPage:
    """A page of entity histories with their instances or aggregates (one snapshot)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _run(conn, tenant, query)


async def _run(conn: asyncpg.Connection, tenant: str, query: TemporalQuery) -> TemporalPage:
    params = Params()
    where = entity_filter(tenant, query.entities, params)
    eq = query.entities
    count = None
    if eq.count:
        count = await conn.fetchval(f"SELECT count(*) FROM temporal_entities te WHERE {where}",  # noqa: S608
                                    *params.values)
    rows: list[Any] = []
    if eq.limit > 0:
        limit, offset = params.add(eq.limit, "bigint"), params.add(eq.offset, "bigint")
        rows = await conn.fetch(f"SELECT {_ENTITY_COLUMNS} FROM temporal_entities te "  # noqa: S608
                                f"WHERE {where} ORDER BY te.id LIMIT {limit} OFFSET {offset}",
                                *params.values)
    entities = {r[0]: _entity(r) for r in rows}
    attrs = list(eq.attrs) if eq.attrs else None
    series = await conn.fetch(_SERIES, list(entities), attrs) if entities else []
    page = TemporalPage(list(entities.values()), count)
    if query.aggr_methods:
        await _aggregate(conn, query, series, entities)
    else:
        page.truncated = await _instances(conn, query, series, entities)
    return page


def _entity(row: Any) -> TemporalEntity:
    return TemporalEntity(id=row[1], types=list(row[2]),
                          scopes=list(row[3]) if row[3] else None,
                          created_at=row[4], modified_at=row[5], deleted_at=row[6])


async def _instances(conn: asyncpg.Connection, query: TemporalQuery, series: list[Any],
                     entities: dict[int, TemporalEntity]) -> tuple[int, int] | None:
    if not series:
        return None
    col = _TIME_COLUMNS[query.time.timeproperty]
    params = Params()
    sids = params.add([s[0] for s in series], "bigint[]")
    cond = time_condition(query.time, f"i.{col}", params)
    last_n = query.time.last_n
    fetch = min(last_n, query.instance_limit + 1) if last_n is not None \
        else query.instance_limit + 1
    order = "DESC" if last_n is not None else "ASC"
    sql = (f"SELECT s.sid, x.ipk, x.t, x.created_at, x.modified_at, x.deleted_at, x.body "  # noqa: S608
           f"FROM unnest({sids}) AS s(sid) CROSS JOIN LATERAL (SELECT i.ipk, i.{col} AS t, "
           "i.created_at, i.modified_at, i.deleted_at, i.body FROM temporal_instances i "
           f"WHERE i.sid = s.sid{cond} ORDER BY i.{col} {order}, i.ipk {order} "
           f"LIMIT {params.add(fetch, 'bigint')}) x")
    by_sid: dict[int, list[Instance]] = {s[0]: [] for s in series}
    for row in await conn.fetch(sql, *params.values):
        by_sid[row[0]].append(_instance(row))
    kept, truncated = clip([by_sid[s[0]] for s in series], query.instance_limit,
                           last_n is not None)
    for (_sid, tpk, attr, _ds), instances in zip(series, kept, strict=True):
        if instances:
            entities[tpk].instances.setdefault(attr, []).extend(instances)
    return truncated


def _instance(row: Any) -> Instance:
    inst: Instance = dict(row[6])
    inst["instanceId"] = instance_id(row[1])
    inst["createdAt"] = from_micros(row[3])
    inst["modifiedAt"] = from_micros(row[4])
    if row[5] is not None:
        inst["deletedAt"] = from_micros(row[5])
    inst["@t"] = row[2]
    return inst


async def _aggregate(conn: asyncpg.Connection, query: TemporalQuery, series: list[Any],
                     entities: dict[int, TemporalEntity]) -> None:
    if not series:
        return
    col = _TIME_COLUMNS[query.time.timeproperty]
    params = Params()
    sids = [s[0] for s in series]
    sid_param = params.add(sids, "bigint[]")
    origin = query.time.time_at if query.time.timerel in ("after", "between") else 0
    bucket = "0"
    if query.aggr_period:
        bucket = (f"({col} - {params.add(origin or 0, 'bigint')}) / "
                  f"{params.add(query.aggr_period, 'bigint')}")
    distinct = f"count(DISTINCT {_VALUE})" if "distinctCount" in query.aggr_methods else "0"
    cond = time_condition(query.time, col, params)
    values = params.values
    sql = (f"SELECT sid, {bucket} AS b, count(*), {distinct}, count(num), sum(num), "  # noqa: S608
           f"min(num), max(num), sum(num * num), min({col}), max({col}) "
           f"FROM temporal_instances WHERE sid = ANY({sid_param}) AND deleted_at IS NULL{cond} "
           "GROUP BY sid, b ORDER BY sid, b")
    if rollups_apply(query.time, query.aggr_period, query.aggr_methods):
        low, high = query.time.bounds()
        sql, values = aggregate_sql(sids, origin or 0, query.aggr_period, low, high)
    rows = await conn.fetch(sql, *values)
    types = dict(await conn.fetch(_FIRST_TYPE, sids))
    by_sid: dict[int, list[Any]] = {}
    for row in rows:
        by_sid.setdefault(row[0], []).append(tuple(row)[1:])
    for sid, tpk, attr, ds in series:
        found = by_sid.get(sid)
        if found:
            agg = Aggregate(ds or None, types.get(sid) or "Property")
            agg.values = aggregate_values(query.aggr_methods, query.time, query.aggr_period,
                                          found)
            entities[tpk].aggregates.setdefault(attr, []).append(agg)
