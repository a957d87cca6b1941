"""Which attribute instances an entity change adds to its history, and how they are stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from urbis.context.errors import BadRequestData
from urbis.context.model import VALUE_KEYS, Entity, Instance
from urbis.context.temporal import NULL, trusted_micros


def numeric(inst: Instance) -> float | None:
    """The value of a Property instance as a number (aggregations), or None."""
    value = inst.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool) and \
            inst.get("type", "Property") == "Property":
        return float(value)
    return None


@dataclass(slots=True)
class Record:
    """One attribute instance a change adds to an entity's history."""

    attr: str
    instance: Instance  # without createdAt / modifiedAt (the store's columns)
    dataset_id: str | None
    observed_at: int  # observedAt, or when it was recorded
    recorded_at: int
    deleted: bool = False


def strip_system(inst: Instance) -> Instance:
    """A copy of an instance without its own createdAt / modifiedAt / instanceId."""
    return {k: v for k, v in inst.items()
            if k not in ("createdAt", "modifiedAt", "instanceId", "deletedAt")}


def merge_stored(old: Instance, new: Instance) -> Instance:
    """A stored instance with new members; its datasetId (its series) never changes."""
    merged = {**old, **new}
    merged.pop("datasetId", None)
    if "datasetId" in old:
        merged["datasetId"] = old["datasetId"]
    return merged


def record_of(attr: str, inst: Instance, recorded_at: int) -> Record:
    """The history record of a new instance."""
    observed = inst.get("observedAt")
    at = trusted_micros(observed) if isinstance(observed, str) else recorded_at
    return Record(attr, strip_system(inst), inst.get("datasetId"), at, recorded_at)


def deletion_of(attr: str, inst: Instance, at: int) -> Record:
    """The history record of a deleted attribute instance (its value is NGSI-LD Null)."""
    kind = inst.get("type", "Property")
    marker: Instance = {"type": kind, VALUE_KEYS.get(kind, "value"): NULL}
    if "datasetId" in inst:
        marker["datasetId"] = inst["datasetId"]
    return Record(attr, marker, inst.get("datasetId"), at, at, deleted=True)


def changes(before: Entity | None, after: Entity | None, now: int) -> list[Record]:
    """The instances an entity change adds to its history: changed, new and deleted ones."""
    out: list[Record] = []
    if after is not None:
        stamp = _when(after.modified_at, now)
        for attr, instances in after.attrs.items():
            old = before.attrs.get(attr) if before is not None else None
            for inst in instances:
                if old is None or not _unchanged(old, inst):
                    out.append(record_of(attr, inst, stamp))
    if before is not None:
        at = _when(after.modified_at if after is not None else None, now)
        out.extend(deletion_of(attr, inst, at) for attr, inst in _gone(before, after))
    return out


def _when(text: str | None, now: int) -> int:
    if not text:
        return now
    try:
        return trusted_micros(text)
    except BadRequestData:
        return now


def _unchanged(old: list[Instance], inst: Instance) -> bool:
    ds = inst.get("datasetId")
    return any(o.get("datasetId") == ds and o == inst for o in old)


def _gone(before: Entity, after: Entity | None) -> Iterator[tuple[str, Instance]]:
    for attr, instances in before.attrs.items():
        kept = after.attrs.get(attr, ()) if after is not None else ()
        datasets = {k.get("datasetId") for k in kept}
        for inst in instances:
            if inst.get("datasetId") not in datasets:
                yield attr, inst
