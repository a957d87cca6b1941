"""An entity query as a source is asked it: parameters in the terms of the source's @context.

The query arrives parsed, every name expanded; it leaves with names compacted by the term map
of the registration's @context (which the request names in its Link header), so the source
expands them back to the same IRIs whatever @context the caller used: types, attributes,
q (re-serialised from its AST), scopeQ, the geo-query and orderBy. A q naming an attribute
that @context has no term or prefix for cannot be written in it (q takes no full IRIs):
such a query is sent with the caller's own @context (`expressible`). The source is asked for
the normalized form with system attributes (what merging needs), for a window of entities
from offset 0, in the order of the merged page (orderBy, else id).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence

from urbis.context.geo import LOCATION, GeoQuery
from urbis.context.jsonld import TermMap
from urbis.context.query.q import to_text
from urbis.context.query.q_ast import And, Or, QNode
from urbis.context.query.scope import scope_to_text
from urbis.context.query.types import type_to_text
from urbis.storage.base import EntityQuery

SYS_KEYS = frozenset({"id", "createdAt", "modifiedAt"})


def expressible(query: EntityQuery, tm: TermMap) -> bool:
    """Whether the query can be written in the terms of `tm`: q names attributes by terms or
    compact IRIs only, so each of its attributes must compact to one."""
    return query.q is None or all("://" not in tm.compact(name) for name in _q_names(query.q))


def _q_names(node: QNode) -> Iterator[str]:
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _q_names(item)
    else:
        yield node.path.attr
        yield from node.path.sub


def query_params(query: EntityQuery, tm: TermMap, *, limit: int, offset: int,
                 attrs: Collection[str] | None) -> dict[str, str]:
    """GET /entities parameters asking a source for part of `query`'s answer."""
    params = {"options": "sysAttrs", "limit": str(limit), "offset": str(offset),
              "orderBy": order_text(query.order_by or (("id", False),), tm)}
    if query.ids:
        params["id"] = ",".join(query.ids)
    if query.id_pattern:
        params["idPattern"] = query.id_pattern
    if query.type_expr is not None:
        params["type"] = type_to_text(query.type_expr, tm.compact_value_iri)
    if attrs:
        params["attrs"] = ",".join(sorted(tm.compact(a) for a in attrs))
    if query.q is not None:
        params["q"] = to_text(query.q, tm.compact)
    if query.scope_q is not None:
        params["scopeQ"] = scope_to_text(query.scope_q)
    if query.geo is not None:
        params.update(geo_params(query.geo, tm))
    if query.count:
        params["count"] = "true"
    return params


def geo_params(geo: GeoQuery, tm: TermMap) -> dict[str, str]:
    """georel, geometry, coordinates and geoproperty of a parsed geo-query."""
    georel = geo.georel
    if geo.max_distance is not None:
        georel += f";maxDistance=={geo.max_distance:g}"
    if geo.min_distance is not None:
        georel += f";minDistance=={geo.min_distance:g}"
    params = {"georel": georel, "geometry": geo.geometry,
              "coordinates": json.dumps(geo.geojson["coordinates"], separators=(",", ":"))}
    if geo.geoproperty != LOCATION:
        params["geoproperty"] = tm.compact(geo.geoproperty)
    return params


def order_text(order_by: Sequence[tuple[str, bool]], tm: TermMap) -> str:
    """The orderBy parameter of (key, descending) pairs."""
    return ",".join(f"{key if key in SYS_KEYS else tm.compact(key)};"
                    f"{'descending' if descending else 'ascending'}"
                    for key, descending in order_by)


def forwarded_attrs(wanted: Collection[str] | None, covered: frozenset[str] | None
                    ) -> frozenset[str] | None:
    """Attributes to ask a source for: those wanted that it covers (None: no restriction;
    an empty set: nothing the source could give)."""
    if covered is None:
        return None if wanted is None else frozenset(wanted)
    if wanted is None:
        return covered
    return covered & frozenset(wanted)
