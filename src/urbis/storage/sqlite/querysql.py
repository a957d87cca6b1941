"""Assemble an EntityQuery into one SQLite WHERE clause and ORDER BY (parameters only)."""

from __future__ import annotations

from typing import Any

from urbis.storage.base import EntityQuery
from urbis.storage.sqlite import geosql, qsql

_SYS_ORDER = {"id": "e.id", "createdAt": "e.created_at", "modifiedAt": "e.modified_at"}


def build_query(tenant: str, query: EntityQuery) -> tuple[str, list[Any], str, list[Any]]:
    """(where, where params, order by, order-by params) for the `entities e` table."""
    # One selective condition drives the plan (index look-ups); the others are checked per row.
    # A leading "+" keeps SQLite from using an index for a term (its documented planner hint).
    geo_drives = not query.ids and query.geo is not None and query.geo.georel != "disjoint" \
        and not query.geo.min_distance
    others_pk = "+e.pk" if (query.ids or geo_drives) else "e.pk"
    clauses = ["+e.tenant = ?" if geo_drives else "e.tenant = ?"]
    params: list[Any] = [tenant]
    if query.ids:
        clauses.append(f"e.id IN ({','.join('?' * len(query.ids))})")
        params.extend(query.ids)
    if query.id_pattern is not None:
        clauses.append("e.id REGEXP ?")
        params.append(query.id_pattern)
    if query.type_expr is not None:
        _add(clauses, params, qsql.compile_types(query.type_expr, tenant, pk_col=others_pk))
    if query.attrs:
        ors = " OR ".join("json_type(e.attrs, ?) IS NOT NULL" for _ in query.attrs)
        clauses.append(f"({ors})")
        params.extend(json_path(a) for a in query.attrs)
    if query.q is not None:
        _add(clauses, params, qsql.compile_q(query.q))
    if query.scope_q is not None:
        _add(clauses, params, qsql.compile_scope_q(query.scope_q))
    if query.geo is not None:
        _add(clauses, params,
             geosql.compile_geo(query.geo, pk_col="e.pk" if geo_drives else others_pk))
    order, order_params = _order(query)
    return " AND ".join(clauses), params, order, order_params


def json_path(iri: str) -> str:
    """The JSON path of a top-level attribute (an IRI never contains a double quote)."""
    return '$."' + iri.replace('"', "") + '"'


def _add(clauses: list[str], params: list[Any], fragment: tuple[str, list[Any]]) -> None:
    clauses.append(f"({fragment[0]})")
    params.extend(fragment[1])


def _order(query: EntityQuery) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for name, descending in query.order_by:
        direction = "DESC" if descending else "ASC"
        column = _SYS_ORDER.get(name)
        if column is None:
            column = "coalesce(json_extract(e.attrs, ?), json_extract(e.attrs, ?))"
            params.extend([json_path(name) + "[0].value", json_path(name) + "[0].object"])
        parts.append(f"{column} {direction}")
    parts.append("e.pk")
    return ", ".join(parts), params
