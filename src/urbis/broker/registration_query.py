"""Turn GET /csourceRegistrations parameters into a RegistrationQuery (clause 5.10.2).

`id`, `idPattern`, `type` (a type selection) and `attrs` select on the registrations'
`information`; `q` and `csf` filter on their properties, a geo-query (`georel`, `geometry`,
`coordinates`, `geoproperty`: location by default) on their geometries, `scopeQ` on their
scope. The store narrows by its index (types, ids, attributes) and applies the exact filter;
without any filter it pages in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from urbis.broker.queries import Paging, split_list
from urbis.broker.subscriptions import page_params
from urbis.context.errors import BadRequestData
from urbis.context.geo import parse_geo_query
from urbis.context.jsonld import TermMap
from urbis.context.normalize import check_name, check_uri
from urbis.context.query.q import compile_regex, parse_q
from urbis.context.query.scope import parse_scope_q
from urbis.context.query.types import parse_type_expr, type_names
from urbis.context.registration_match import RegistrationFilter, Selector
from urbis.storage.registrations_base import RegistrationQuery


def registration_query(params: Mapping[str, Any], tm: TermMap, paging: Paging
                       ) -> RegistrationQuery:
    """The store query of a discovery request; BadRequestData on bad parameters."""
    limit, offset, count = page_params(params, paging)
    ids = tuple(check_uri(i, "id") for i in split_list(params.get("id")))
    pattern = params.get("idPattern")
    if pattern is not None:
        compile_regex(str(pattern))
    types = parse_type_expr(params["type"], tm.expand) if params.get("type") else None
    attrs = [tm.expand(check_name(a)) for a in split_list(params.get("attrs"))]
    flt = RegistrationFilter(
        selectors=(Selector(types, ids, pattern),) if types or ids or pattern else (),
        attrs=frozenset(attrs), q=_q(params, "q", tm), csf=_q(params, "csf", tm),
        geo=parse_geo_query(params.get("georel"), params.get("geometry"),
                            params.get("coordinates"), params.get("geoproperty"), tm.expand),
        scope=parse_scope_q(params["scopeQ"]) if params.get("scopeQ") else None)
    filtered = flt != RegistrationFilter()
    return RegistrationQuery(
        types=sorted(type_names(types)) if types is not None else None, ids=ids or None,
        attrs=attrs or None, test=flt.matches if filtered else None, limit=limit,
        offset=offset, count=count)


def _q(params: Mapping[str, Any], name: str, tm: TermMap) -> Any:
    text = params.get(name)
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise BadRequestData(f"{name} must be a query expression")
    return parse_q(text, tm.expand)
