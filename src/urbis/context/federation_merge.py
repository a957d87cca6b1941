"""Merge one entity's parts from several places (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 4.5.5).

The local entity (without what proxied registrations hold) and the answers of the inclusive,
exclusive and redirect sources are merged attribute instance by attribute instance: for the
same attribute and datasetId the most recent instance wins (observedAt when both have one,
else modifiedAt; a tie keeps the one already there). Auxiliary answers come last and only
fill gaps: an attribute that no other part provides. Types and scopes are united; createdAt
is the earliest, modifiedAt the latest. Then `order_entities` sorts a merged page the way
the store would (orderBy keys, then id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from urbis.context.model import VALUE_KEYS, Entity, Instance
from urbis.context.query.q import datetime_key


def strip(entity: Entity | None, names: frozenset[str] | None) -> Entity | None:
    """The entity without these attributes (None: without anything; proxied elsewhere)."""
    if entity is None or names is None:
        return None
    if names:
        entity.attrs = {k: v for k, v in entity.attrs.items() if k not in names}
    return entity


def _stamp(inst: Instance, key: str) -> str | None:
    value = inst.get(key)
    return datetime_key(value) if isinstance(value, str) else None


def newer(current: Instance, other: Instance) -> bool:
    """Whether `other` is more recent than `current` (observedAt, else modifiedAt)."""
    for key in ("observedAt", "modifiedAt"):
        mine, theirs = _stamp(current, key), _stamp(other, key)
        if mine is not None and theirs is not None and mine != theirs:
            return theirs > mine
    return False


def _merge_attr(current: list[Instance], instances: list[Instance]) -> None:
    where = {inst.get("datasetId"): n for n, inst in enumerate(current)}
    for inst in instances:
        n = where.get(inst.get("datasetId"))
        if n is None:
            where[inst.get("datasetId")] = len(current)
            current.append(inst)
        elif newer(current[n], inst):
            current[n] = inst


def _merge_header(target: Entity, other: Entity) -> None:
    target.types.extend(t for t in other.types if t not in target.types)
    if other.scopes:
        target.scopes = list(dict.fromkeys([*(target.scopes or ()), *other.scopes]))
    target.created_at = _pick(target.created_at, other.created_at, min)
    target.modified_at = _pick(target.modified_at, other.modified_at, max)


def _pick(a: str | None, b: str | None, choose: Any) -> str | None:
    if a is None or b is None:
        return a or b
    ka, kb = datetime_key(a), datetime_key(b)
    if ka is None or kb is None:
        return a
    return a if choose(ka, kb) == ka else b


def merge_into(target: Entity, other: Entity, *, only: frozenset[str] | None = None) -> None:
    """Merge `other` into `target`; with `only`, just the attributes it names."""
    _merge_header(target, other)
    for name, instances in other.attrs.items():
        if only is not None and name not in only:
            continue
        current = target.attrs.get(name)
        if current is None:
            target.attrs[name] = list(instances)
        else:
            _merge_attr(current, instances)


def merge_parts(local: Entity | None, parts: Iterable[Entity],
                auxiliary: Iterable[Entity] = ()) -> Entity | None:
    """One entity from its local part, source parts and auxiliary parts (None: none)."""
    merged = local
    for part in parts:
        if merged is None:
            merged = Entity(part.id, list(part.types), {}, None, part.created_at,
                            part.modified_at)
        merge_into(merged, part)
    aux = list(auxiliary)
    if not aux:
        return merged
    present = frozenset(merged.attrs) if merged is not None else frozenset()
    for part in aux:
        if merged is None:
            merged = Entity(part.id, list(part.types), {}, None, part.created_at,
                            part.modified_at)
        gaps = frozenset(k for k in part.attrs if k not in present)
        merge_into(merged, part, only=gaps)
    return merged


def merge_lists(local: Sequence[Entity], parts: Iterable[Sequence[Entity]],
                auxiliary: Iterable[Sequence[Entity]] = ()) -> dict[str, Entity]:
    """Entities by id from the local list and the sources' lists, merged per entity."""
    by_id: dict[str, list[Entity]] = {}
    for entities in parts:
        for entity in entities:
            by_id.setdefault(entity.id, []).append(entity)
    aux_by_id: dict[str, list[Entity]] = {}
    for entities in auxiliary:
        for entity in entities:
            aux_by_id.setdefault(entity.id, []).append(entity)
    out: dict[str, Entity] = {e.id: e for e in local}
    for eid, found in by_id.items():
        if len(found) == 1 and eid not in out and eid not in aux_by_id:
            out[eid] = found[0]  # from one source only: nothing to merge
            continue
        merged = merge_parts(out.get(eid), found, aux_by_id.get(eid, ()))
        if merged is not None:
            out[eid] = merged
    for eid, found in aux_by_id.items():
        if eid not in by_id:
            merged = merge_parts(out.get(eid), (), found)
            if merged is not None:
                out[eid] = merged
    return out


# --- ordering of a merged page --------------------------------------------------------------

_RANKS = {bool: 2, int: 0, float: 0, str: 1}


def _sort_value(entity: Entity, key: str) -> tuple[int, Any]:
    if key == "id":
        return 0, entity.id
    if key in ("createdAt", "modifiedAt"):
        value: Any = entity.created_at if key == "createdAt" else entity.modified_at
    else:
        instances = entity.attrs.get(key) or [{}]
        inst = next((i for i in instances if "datasetId" not in i), instances[0])
        value = inst.get(VALUE_KEYS.get(inst.get("type", ""), "value"))
    rank = _RANKS.get(type(value))
    if rank is None:  # absent, null or structured: after every plain value, in id order
        return 9, ""
    return rank, value


def order_entities(entities: list[Entity], order_by: Sequence[tuple[str, bool]]) -> list[Entity]:
    """Entities sorted by orderBy keys (attribute IRIs, id, createdAt, modifiedAt), then id."""
    out = sorted(entities, key=lambda e: e.id)
    for key, descending in reversed(order_by):
        present = [e for e in out if _sort_value(e, key)[0] != 9]
        absent = [e for e in out if _sort_value(e, key)[0] == 9]
        present.sort(key=lambda e: _sort_value(e, key), reverse=descending)
        out = present + absent
    return out
