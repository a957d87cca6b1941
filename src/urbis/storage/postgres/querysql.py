"""Assemble an EntityQuery into PostgreSQL statements over `entities e` (parameters only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from urbis.storage.base import EntityQuery
from urbis.storage.postgres import geosql, qsql
from urbis.storage.postgres.qsql import Params
from urbis.storage.postgres.regex import to_postgres

COLUMNS = "e.id, e.types, e.scopes, e.created_at, e.modified_at, e.attrs"
_SYS_ORDER = {"id": "e.id", "createdAt": "e.created_at", "modifiedAt": "e.modified_at"}
# Attribute order keys mirror SQLite's: missing/null, then numbers (and booleans as 0/1), then
# text by code point, then compound values by their JSON text.
_RANK = ("(CASE jsonb_typeof({v}) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 "
         "WHEN 'string' THEN 2 WHEN 'object' THEN 3 WHEN 'array' THEN 3 ELSE 0 END)")
_NUMBER = ("(CASE jsonb_typeof({v}) WHEN 'number' THEN ({v})::numeric "
           "WHEN 'boolean' THEN ({v})::boolean::int END)")
_TEXT = ("(CASE jsonb_typeof({v}) WHEN 'string' THEN {v} #>> '{{}}' "
         "WHEN 'object' THEN ({v})::text WHEN 'array' THEN ({v})::text END) COLLATE \"C\"")


@dataclass(slots=True)
class Statements:
    """The page and count statements of one query; `count_args` is a prefix of `args`."""

    page: str
    count: str
    args: list[Any]
    count_args: list[Any]


def build_query(tenant: str, query: EntityQuery) -> Statements:
    """The SELECT of a page (filters, order, limit, offset) and the matching count(*)."""
    params = Params()
    where = build_where(tenant, query, params)
    count_args = list(params.values)
    order = _order(query, params)
    limit, offset = params.add(query.limit, "bigint"), params.add(query.offset, "bigint")
    page = (f"SELECT {COLUMNS} FROM entities e WHERE {where} "  # noqa: S608
            f"ORDER BY {order} LIMIT {limit} OFFSET {offset}")
    count = f"SELECT count(*) FROM entities e WHERE {where}"  # noqa: S608
    return Statements(page, count, params.values, count_args)


def build_where(tenant: str, query: EntityQuery, params: Params) -> str:
    """The WHERE condition of a query, its values appended to `params`."""
    clauses = [f"e.tenant = {params.name(tenant)}"]
    if query.ids:
        ids = [None if "\x00" in i else i for i in query.ids]
        clauses.append(f"e.id = ANY({params.add(ids, 'text[]')})")
    if query.id_pattern is not None:
        clauses.append(f"e.id ~ {params.add(to_postgres(query.id_pattern), 'text')}")
    if query.type_expr is not None:
        clauses.append(qsql.compile_types(query.type_expr, params))
    if query.attrs:
        names = [None if "\x00" in a else a for a in query.attrs]
        clauses.append(f"e.attrs ?| {params.add(names, 'text[]')}")
    if query.q is not None:
        clauses.append(qsql.compile_q(query.q, params))
    if query.scope_q is not None:
        clauses.append(qsql.compile_scope_q(query.scope_q, params))
    if query.geo is not None:
        clauses.append(geosql.compile_geo(query.geo, params))
    return " AND ".join(clauses)


def _order(query: EntityQuery, params: Params) -> str:
    parts: list[str] = []
    for name, descending in query.order_by:
        direction = " DESC" if descending else ""
        column = _SYS_ORDER.get(name)
        if column is not None:
            parts.append(column + direction)
            continue
        attr = params.name(name)
        value = f"COALESCE(e.attrs -> {attr} -> 0 -> 'value', e.attrs -> {attr} -> 0 -> 'object')"
        parts += [template.format(v=value) + direction for template in (_RANK, _NUMBER, _TEXT)]
    parts.append("e.pk")
    return ", ".join(parts)
