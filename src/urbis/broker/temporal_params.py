"""Turn temporal query parameters (URL, or a POST Query object) into a TemporalQuery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from urbis.broker.queries import Paging, entity_query, split_list
from urbis.context.errors import BadRequestData
from urbis.context.jsonld import TermMap
from urbis.context.normalize import check_name, check_uri
from urbis.context.temporal import parse_aggr_methods, parse_aggr_period, parse_time_filter
from urbis.storage.base import EntityQuery
from urbis.storage.temporal_base import TemporalQuery

NORMALIZED = "normalized"
TEMPORAL_VALUES = "temporalValues"
AGGREGATED_VALUES = "aggregatedValues"
FORMATS = (NORMALIZED, TEMPORAL_VALUES, AGGREGATED_VALUES)
_OPTIONS = frozenset({*FORMATS, "sysAttrs", "count"})
# Parameters of the temporal query itself, not of the entity selection.
_TEMPORAL = ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN", "aggrMethods",
             "aggrPeriodDuration", "options", "format", "orderBy")


@dataclass(frozen=True, slots=True)
class TemporalRequest:
    """A parsed temporal retrieve or query: what to fetch and how to render it."""

    query: TemporalQuery
    format: str
    sys_attrs: bool


def _format(params: Mapping[str, Any]) -> tuple[str, set[str]]:
    opts = set(split_list(params.get("options")))
    unknown = opts - _OPTIONS
    if unknown:
        raise BadRequestData(f"unknown options: {', '.join(sorted(unknown))[:200]}")
    chosen = [o for o in FORMATS if o in opts]
    fmt = params.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise BadRequestData(f"format must be one of {', '.join(FORMATS)}, got {fmt!r:.50}")
        chosen = [fmt]
    if len(chosen) > 1:
        raise BadRequestData("options name more than one format")
    return (chosen[0] if chosen else NORMALIZED), opts


def temporal_request(params: Mapping[str, Any], tm: TermMap, paging: Paging,
                     instance_limit: int, entity_id: str | None = None) -> TemporalRequest:
    """A TemporalRequest from the parameters of a retrieve (`entity_id`) or a query."""
    fmt, opts = _format(params)
    time = parse_time_filter(dict(params))
    methods: list[str] = []
    period = 0
    if fmt == AGGREGATED_VALUES:
        if params.get("aggrMethods") is None:
            raise BadRequestData("aggregatedValues needs aggrMethods")
        methods = parse_aggr_methods(params["aggrMethods"])
        period = parse_aggr_period(params.get("aggrPeriodDuration"))
    elif params.get("aggrMethods") is not None or params.get("aggrPeriodDuration") is not None:
        raise BadRequestData("aggrMethods and aggrPeriodDuration need format=aggregatedValues")
    if entity_id is not None:
        attrs = [tm.expand(check_name(a)) for a in split_list(params.get("attrs"))]
        entities = EntityQuery(ids=[check_uri(entity_id, "entity id")], attrs=attrs or None,
                               limit=1)
    else:
        rest = {k: v for k, v in params.items() if k not in _TEMPORAL}
        entities = entity_query(rest, tm, paging)
        entities.count = entities.count or "count" in opts
    query = TemporalQuery(entities, time, instance_limit, methods, period)
    return TemporalRequest(query, fmt, "sysAttrs" in opts)
