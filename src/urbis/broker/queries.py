"""Turn query parameters (URL or a POST Query object) into an EntityQuery and render options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from urbis.context.errors import BadRequestData, TooManyResults
from urbis.context.geo import parse_geo_q_object, parse_geo_query
from urbis.context.jsonld import TermMap
from urbis.context.normalize import check_name, check_uri
from urbis.context.query.q import parse_q
from urbis.context.query.scope import parse_scope_q
from urbis.context.query.types import parse_type_expr
from urbis.context.render import CONCISE, FORMATS, KEY_VALUES, NORMALIZED, RenderOptions
from urbis.storage.base import EntityQuery

_OPTIONS = frozenset({"sysAttrs", "keyValues", "concise", "normalized", "simplified", "count",
                      "noOverwrite", "replace", "update", "entityMap"})


@dataclass(frozen=True, slots=True)
class Paging:
    """Limits that a deployment sets."""

    default_limit: int = 20
    max_limit: int = 1000


def split_list(value: str | list[str] | None) -> list[str]:
    """A comma-separated parameter (or an array) as a list of non-empty strings."""
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def parse_options(options: str | None, fmt: str | None) -> tuple[str, bool, set[str]]:
    """(format, sysAttrs, all options) from `options` and `format`."""
    opts = set(split_list(options))
    unknown = opts - _OPTIONS
    if unknown:
        raise BadRequestData(f"unknown options: {', '.join(sorted(unknown))}")
    chosen = fmt or next((o for o in ("keyValues", "simplified", "concise", "normalized")
                          if o in opts), NORMALIZED)
    if chosen == "simplified":
        chosen = KEY_VALUES
    if chosen not in FORMATS:
        raise BadRequestData(f"unknown format {chosen!r}")
    return chosen, "sysAttrs" in opts, opts


def render_options(params: Mapping[str, Any], tm: TermMap) -> RenderOptions:
    """Format, sysAttrs, projection and lang from request parameters."""
    fmt, sys_attrs, _ = parse_options(params.get("options"), params.get("format"))
    attrs = split_list(params.get("attrs")) + split_list(params.get("pick"))
    omit = split_list(params.get("omit"))
    if params.get("pick") and params.get("attrs"):
        raise BadRequestData("pick and attrs cannot be used together")
    keep = {tm.expand(check_name(a)) for a in attrs if a not in ("id", "type")} if attrs else None
    drop = {tm.expand(check_name(a)) for a in omit if a not in ("id", "type")} if omit else None
    return RenderOptions(
        format=fmt,
        sys_attrs=sys_attrs,
        attrs=keep,
        omit=drop,
        lang=params.get("lang"),
        keep_id="id" not in omit and (not params.get("pick") or "id" in attrs),
        keep_type="type" not in omit and (not params.get("pick") or "type" in attrs),
    )


def entity_query(params: Mapping[str, Any], tm: TermMap, paging: Paging) -> EntityQuery:
    """An EntityQuery from GET /entities parameters (or an equivalent Query object)."""
    ids = [check_uri(i, "entity id") for i in split_list(params.get("id"))]
    id_pattern = params.get("idPattern")
    if id_pattern is not None:
        _check_regex(id_pattern)
    type_param = params.get("type")
    if isinstance(type_param, list):
        type_param = ",".join(type_param)
    type_expr = parse_type_expr(type_param, tm.expand) if type_param else None
    attrs = [tm.expand(check_name(a)) for a in split_list(params.get("attrs"))]
    q = parse_q(params["q"], tm.expand,
                expand_values=split_list(params.get("expandValues"))) if params.get("q") else None
    scope_q = parse_scope_q(params["scopeQ"]) if params.get("scopeQ") else None
    geo = _geo(params, tm)
    if not (ids or id_pattern or type_expr or attrs or q or scope_q or geo):
        raise BadRequestData("a query needs at least one of: id, idPattern, type, attrs, q, "
                             "geoQ (georel), scopeQ")
    limit, offset = _paging(params, paging)
    _, _, opts = parse_options(params.get("options"), params.get("format"))
    return EntityQuery(
        ids=ids or None, id_pattern=id_pattern, type_expr=type_expr, attrs=attrs or None, q=q,
        scope_q=scope_q, geo=geo, order_by=_order_by(params.get("orderBy"), tm), limit=limit,
        offset=offset, count=_flag(params.get("count")) or "count" in opts,
    )


def _geo(params: Mapping[str, Any], tm: TermMap) -> Any:
    geo_q = params.get("geoQ")
    if geo_q is not None:
        return parse_geo_q_object(geo_q, tm.expand)
    return parse_geo_query(params.get("georel"), params.get("geometry"),
                           params.get("coordinates"), params.get("geoproperty"), tm.expand)


def _paging(params: Mapping[str, Any], paging: Paging) -> tuple[int, int]:
    limit = _int(params.get("limit"), "limit", paging.default_limit)
    offset = _int(params.get("offset"), "offset", 0)
    if limit < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if limit == 0 and not (_flag(params.get("count")) or "count" in split_list(
            params.get("options"))):
        raise BadRequestData("limit=0 is only allowed together with count=true")
    if limit > paging.max_limit:
        raise TooManyResults(f"limit {limit} exceeds the maximum of {paging.max_limit}")
    return limit, offset


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequestData(f"{name} must be an integer, got {value!r:.50}") from None


def _flag(value: Any) -> bool:
    if value is None or value is False:
        return False
    if value is True or str(value).lower() == "true":
        return True
    if str(value).lower() == "false":
        return False
    raise BadRequestData(f"expected true or false, got {value!r:.50}")


def _order_by(value: Any, tm: TermMap) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    for part in split_list(value):
        name, _, direction = part.partition(";")
        if direction not in ("", "ascending", "descending", "asc", "desc"):
            raise BadRequestData(f"orderBy direction must be ascending or descending: {part}")
        key = name if name in ("id", "createdAt", "modifiedAt") else tm.expand(check_name(name))
        order.append((key, direction.startswith("desc")))
    return order


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise BadRequestData(f"invalid idPattern: {err}") from None


__all__ = ["CONCISE", "Paging", "entity_query", "render_options", "split_list"]
