"""Pure NGSI-LD write semantics over internal entities (create, merge, append, update, delete).

Each function takes the current entity (a private copy the backend decoded for this call, so
it may be changed in place) and the parsed input and returns the new entity, so
that a backend can run it inside its transaction (read-modify-write, serialised per entity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from urbis.context.errors import AlreadyExists, BadRequestData, ResourceNotFound
from urbis.context.model import INSTANCE_KEYS, VALUE_KEYS, Entity, Instance
from urbis.context.normalize import NULL_URI


@dataclass(slots=True)
class AttrReport:
    """Which attributes an append/update changed, and which it did not (with reasons)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)


def stamp(inst: Instance, now: str, created: str | None = None) -> Instance:
    """Set system timestamps on an instance and its sub-attributes."""
    inst["createdAt"] = created or now
    inst["modifiedAt"] = now
    for key, sub in inst.items():
        if key not in INSTANCE_KEYS and isinstance(sub, dict):
            stamp(sub, now, sub.get("createdAt"))
    return inst


def create(current: Entity | None, new: Entity, now: str) -> Entity:
    """A new entity; AlreadyExists if one has the id."""
    if current is not None:
        raise AlreadyExists(f"entity {new.id} already exists", entityId=new.id)
    new.created_at = new.modified_at = now
    for instances in new.attrs.values():
        for inst in instances:
            stamp(inst, now)
    return new


def require(current: Entity | None, entity_id: str) -> Entity:
    """The current entity, or ResourceNotFound."""
    if current is None:
        raise ResourceNotFound(f"entity {entity_id} not found")
    return current


def replace(current: Entity | None, new: Entity, now: str) -> Entity:
    """PUT /entities/{id}: the entity's attributes (and type, scope) replaced."""
    old = require(current, new.id)
    new.created_at = old.created_at
    new.modified_at = now
    if not new.types:
        new.types = old.types
    for instances in new.attrs.values():
        for inst in instances:
            stamp(inst, now)
    return new


def _find(instances: list[Instance], dataset_id: Any) -> int:
    for index, inst in enumerate(instances):
        if inst.get("datasetId") == dataset_id:
            return index
    return -1


def put_instance(entity: Entity, name: str, inst: Instance, now: str, overwrite: bool) -> bool:
    """Add or replace one instance (by datasetId); False if kept because of noOverwrite."""
    instances = entity.attrs.setdefault(name, [])
    index = _find(instances, inst.get("datasetId"))
    if index < 0:
        instances.append(stamp(inst, now))
        return True
    if not overwrite:
        return False
    instances[index] = stamp(inst, now, instances[index].get("createdAt"))
    return True


def append_attrs(current: Entity | None, entity_id: str, attrs: dict[str, list[Instance]],
                 now: str, overwrite: bool = True, types: list[str] | None = None
                 ) -> tuple[Entity, AttrReport]:
    """POST /entities/{id}/attrs (and batch update): add attributes, replace unless noOverwrite."""
    entity = require(current, entity_id)
    report = AttrReport()
    for name, instances in attrs.items():
        changed = [put_instance(entity, name, inst, now, overwrite) for inst in instances]
        if all(changed):
            report.updated.append(name)
        else:
            report.not_updated.append((name, "attribute exists and noOverwrite was given"))
    _add_types(entity, types)
    if report.updated:
        entity.modified_at = now
    return entity, report


def update_attrs(current: Entity | None, entity_id: str, attrs: dict[str, list[Instance]],
                 now: str) -> tuple[Entity, AttrReport]:
    """PATCH /entities/{id}/attrs: replace existing attribute instances only."""
    entity = require(current, entity_id)
    report = AttrReport()
    for name, instances in attrs.items():
        existing = entity.attrs.get(name)
        if not existing or any(_find(existing, i.get("datasetId")) < 0 for i in instances):
            report.not_updated.append((name, "attribute (or datasetId) not found"))
            continue
        for inst in instances:
            put_instance(entity, name, inst, now, overwrite=True)
        report.updated.append(name)
    if report.updated:
        entity.modified_at = now
    return entity, report


def merge_instance(old: Instance, patch: Instance, now: str) -> Instance:
    """Merge-patch one instance: members replaced, sub-attributes merged, nulls delete."""
    merged = dict(old)
    attr_type = patch.get("type", old.get("type"))
    if attr_type != old.get("type"):
        for key in VALUE_KEYS.values():
            merged.pop(key, None)
    for key, value in patch.items():
        if key in ("createdAt", "modifiedAt"):
            continue
        if value == NULL_URI or (isinstance(value, dict) and _is_null(value)):
            merged.pop(key, None)
        elif key not in INSTANCE_KEYS and isinstance(value, dict):
            previous = old.get(key)
            merged[key] = (merge_instance(previous, value, now) if isinstance(previous, dict)
                           else stamp(value, now))
        else:
            merged[key] = value
    merged["modifiedAt"] = now
    return merged


def _is_null(inst: dict[str, Any]) -> bool:
    return any(inst.get(k) == NULL_URI for k in VALUE_KEYS.values())


def merge_entity(current: Entity | None, entity_id: str, patch: Entity, now: str) -> Entity:
    """PATCH /entities/{id} (merge-patch): attributes merged, urn:ngsi-ld:null deletes."""
    entity = require(current, entity_id)
    for name, instances in patch.attrs.items():
        for inst in instances:
            _merge_one(entity, name, inst, now)
    _add_types(entity, patch.types)
    if patch.scopes is not None:
        entity.scopes = patch.scopes
    entity.modified_at = now
    return entity


def _merge_one(entity: Entity, name: str, inst: Instance, now: str) -> None:
    existing = entity.attrs.get(name, [])
    index = _find(existing, inst.get("datasetId"))
    if _is_null(inst):
        if index >= 0:
            del existing[index]
            if not existing:
                entity.attrs.pop(name, None)
        return
    if index < 0:
        entity.attrs.setdefault(name, []).append(stamp(inst, now))
    else:
        existing[index] = merge_instance(existing[index], inst, now)


def _add_types(entity: Entity, types: list[str] | None) -> None:
    for t in types or ():
        if t not in entity.types:
            entity.types.append(t)


def patch_attr(current: Entity | None, entity_id: str, name: str, inst: Instance, now: str
               ) -> Entity:
    """PATCH /entities/{id}/attrs/{attrId}: partial update of an existing instance."""
    entity = require(current, entity_id)
    existing = entity.attrs.get(name, [])
    index = _find(existing, inst.get("datasetId"))
    if index < 0:
        raise ResourceNotFound(f"attribute {name} not found in entity {entity_id}")
    existing[index] = merge_instance(existing[index], inst, now)
    entity.modified_at = now
    return entity


def replace_attr(current: Entity | None, entity_id: str, name: str, inst: Instance, now: str
                 ) -> Entity:
    """PUT /entities/{id}/attrs/{attrId}: replace an existing instance."""
    entity = require(current, entity_id)
    existing = entity.attrs.get(name, [])
    index = _find(existing, inst.get("datasetId"))
    if index < 0:
        raise ResourceNotFound(f"attribute {name} not found in entity {entity_id}")
    existing[index] = stamp(inst, now, existing[index].get("createdAt"))
    entity.modified_at = now
    return entity


def delete_attr(current: Entity | None, entity_id: str, name: str, dataset_id: str | None,
                delete_all: bool, now: str) -> Entity:
    """DELETE /entities/{id}/attrs/{attrId}: one instance, or all with deleteAll."""
    entity = require(current, entity_id)
    existing = entity.attrs.get(name)
    if not existing:
        raise ResourceNotFound(f"attribute {name} not found in entity {entity_id}")
    if delete_all:
        del entity.attrs[name]
    else:
        index = _find(existing, dataset_id)
        if index < 0:
            raise ResourceNotFound(f"attribute {name} has no instance with datasetId {dataset_id}")
        del existing[index]
        if not existing:
            del entity.attrs[name]
    entity.modified_at = now
    return entity


def single_instance(attrs: dict[str, list[Instance]], name: str) -> Instance:
    """The one instance of a single-attribute fragment."""
    instances = attrs.get(name)
    if not instances or len(instances) != 1:
        raise BadRequestData(f"exactly one instance of {name} is expected")
    return instances[0]
