"""Render entity histories: the temporal representation (normalized), its simplified form
(`temporalValues`) and the aggregated one (`aggregatedValues`), clauses 4.5.7, 4.5.9, 4.5.19.
"""

from __future__ import annotations

from typing import Any

from urbis.broker.temporal_params import AGGREGATED_VALUES, TEMPORAL_VALUES
from urbis.context.jsonld import TermMap
from urbis.context.model import VALUE_KEYS, VOCAB_PROPERTY, Instance
from urbis.context.render import RenderOptions, render_instance
from urbis.context.temporal import from_micros
from urbis.storage.temporal_base import Aggregate, TemporalEntity

# The member holding the [value, time] pairs of each attribute type (clause 4.5.9).
VALUES_MEMBERS = {
    "Property": "values", "GeoProperty": "values", "Relationship": "objects",
    "LanguageProperty": "languageMaps", "VocabProperty": "vocabs", "JsonProperty": "jsons",
    "ListProperty": "valueLists", "ListRelationship": "objectLists",
}


def render_temporal(entity: TemporalEntity, tm: TermMap, fmt: str, sys_attrs: bool
                    ) -> dict[str, Any]:
    """One entity's history as a compacted JSON object."""
    types = [tm.compact_value_iri(t) for t in entity.types]
    out: dict[str, Any] = {"id": entity.id, "type": types[0] if len(types) == 1 else types}
    if entity.scopes:
        out["scope"] = entity.scopes[0] if len(entity.scopes) == 1 else entity.scopes
    if sys_attrs:
        out["createdAt"] = entity.created_at
        out["modifiedAt"] = entity.modified_at
        if entity.deleted_at:
            out["deletedAt"] = entity.deleted_at
    if fmt == AGGREGATED_VALUES:
        for attr, aggregates in entity.aggregates.items():
            out[tm.compact(attr)] = _one_or_many([_aggregated(a) for a in aggregates])
        return out
    opts = RenderOptions(sys_attrs=sys_attrs)
    for attr, instances in entity.instances.items():
        if fmt == TEMPORAL_VALUES:
            groups = _simplified(instances, tm)
            if groups:
                out[tm.compact(attr)] = _one_or_many(groups)
        else:
            out[tm.compact(attr)] = [render_instance(_plain(i), tm, opts) for i in instances]
    return out


def _plain(inst: Instance) -> Instance:
    return {k: v for k, v in inst.items() if k != "@t"}


def _one_or_many(items: list[dict[str, Any]]) -> Any:
    return items[0] if len(items) == 1 else items


def _simplified(instances: list[Instance], tm: TermMap) -> list[dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = {}
    for inst in instances:
        if "deletedAt" in inst:
            continue
        kind = inst.get("type", "Property")
        ds = inst.get("datasetId")
        group = groups.get(ds)
        if group is None:
            group = groups[ds] = {"type": kind, VALUES_MEMBERS.get(kind, "values"): []}
            if ds is not None:
                group["datasetId"] = ds
        value = inst.get(VALUE_KEYS.get(kind, "value"))
        if kind == VOCAB_PROPERTY:
            value = ([tm.compact_value_iri(v) for v in value] if isinstance(value, list)
                     else tm.compact_value_iri(str(value)))
        member = VALUES_MEMBERS.get(group["type"], "values")
        group[member].append([value, from_micros(inst["@t"])])
    return list(groups.values())


def _aggregated(agg: Aggregate) -> dict[str, Any]:
    out: dict[str, Any] = {"type": agg.attr_type}
    if agg.dataset_id is not None:
        out["datasetId"] = agg.dataset_id
    for method, values in agg.values.items():
        out[method] = [[v, from_micros(start), from_micros(end)] for v, start, end in values]
    return out
