"""The line format of `urbis export` / `urbis import`: normalized NGSI-LD that round-trips.

An entity is rendered normalized, with its system attributes (createdAt / modifiedAt of the
entity, of each attribute instance and sub-attribute), and with every name (entity types,
attribute and sub-attribute names, VocabProperty values) written as the full IRI it is stored
under, and no @context. Read back with the core @context (what NGSI-LD applies when there is
none), full IRIs expand to themselves, so a line means the same entity whichever contexts
wrote it and whichever urbis version reads it; another broker reads it as it is.
"""

from __future__ import annotations

from typing import Any

from urbis.context.jsonld import TermMap
from urbis.context.model import ENTITY_KEYS, INSTANCE_KEYS, Entity, Instance
from urbis.context.normalize import check_datetime
from urbis.context.render import RenderOptions, render

# A term map with no terms: compacting gives every IRI back unchanged.
FULL_IRIS = TermMap({}, None)
_DUMP = RenderOptions(sys_attrs=True)
_STAMPS = ("createdAt", "modifiedAt")


def dump(entity: Entity) -> dict[str, Any]:
    """One entity as an export line (a JSON object)."""
    return render(entity, FULL_IRIS, _DUMP)


def keep_sys_attrs(entity: Entity, body: dict[str, Any], tm: TermMap) -> Entity:
    """Copy the createdAt / modifiedAt members of a payload onto the entity parsed from it."""
    entity.created_at = _stamp(body, "createdAt", entity.id)
    entity.modified_at = _stamp(body, "modifiedAt", entity.id)
    for key, raw in body.items():
        instances = None if key in ENTITY_KEYS else entity.attrs.get(tm.expand(key))
        if not instances:
            continue
        # parse_attribute gives one instance per array member, or one for a whole value.
        raws = raw if isinstance(raw, list) and len(raw) == len(instances) else [raw]
        for inst, raw_inst in zip(instances, raws, strict=False):
            _copy(inst, raw_inst, tm)
    return entity


def restore(current: Entity | None, entity: Entity, now: str) -> Entity:
    """The entity as given, replacing any current one; missing timestamps become `now`."""
    kept = current.created_at if current is not None else None
    entity.created_at = entity.created_at or kept or now
    entity.modified_at = entity.modified_at or now
    for instances in entity.attrs.values():
        for inst in instances:
            _fill(inst, now)
    return entity


def _stamp(raw: dict[str, Any], key: str, where: str) -> str | None:
    return check_datetime(raw[key], f"{key} of {where}") if key in raw else None


def _copy(inst: Instance, raw: Any, tm: TermMap) -> None:
    if not isinstance(raw, dict):
        return
    for key in _STAMPS:
        if key in raw:
            inst[key] = check_datetime(raw[key], key)
    for key, sub_raw in raw.items():
        if key not in INSTANCE_KEYS and key != "@context":
            sub = inst.get(tm.expand(key))
            if isinstance(sub, dict):
                _copy(sub, sub_raw, tm)


def _fill(inst: Instance, now: str) -> None:
    for key in _STAMPS:
        inst.setdefault(key, now)
    for key, sub in inst.items():
        if key not in INSTANCE_KEYS and isinstance(sub, dict):
            _fill(sub, now)
