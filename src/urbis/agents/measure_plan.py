"""A device's provisioning compiled for the ingestion hot path (pure: no I/O).

`compile_plan(device, group, tm)` merges the device with its service group (the device wins,
attribute by attribute), expands every name to its IRI once, parses expressions once and builds
the static attributes; `urbis.agents.measure_map` then applies the plan to each message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from urbis.context.device_values import COMMAND, Coerce, checked, kind_of, value_key
from urbis.context.devices import Device, ServiceGroup
from urbis.context.expressions import Expression, compile_expression
from urbis.context.jsonld import TermMap
from urbis.context.model import GEO_CORE_ATTRS, GEO_PROPERTY, PROPERTY, Instance

Explicit = bool | frozenset[str] | Expression


@dataclass(frozen=True, slots=True)
class AttrPlan:
    """How one provisioned attribute is written."""

    name: str  # the attribute's short name (expressions and explicitAttrs see it)
    object_id: str  # the device's name for the measure
    iri: str
    kind: str  # Property, GeoProperty, Relationship
    coerce: Coerce
    unit: str | None = None
    dataset_id: str | None = None
    subs: tuple[tuple[str, Instance], ...] = ()  # metadata as sub-properties (IRI, instance)
    expression: Expression | None = None
    skip: Any = None  # an expression result equal to this is not written
    target: tuple[str, str] | None = None  # (entity id, type IRI) of another entity


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the pipeline needs to turn one device's measures into entity updates."""

    device: Device
    group: ServiceGroup | None
    entity_id: str
    type_iri: str
    by_object: dict[str, tuple[AttrPlan, ...]]  # measure name -> plain attributes
    expressions: tuple[AttrPlan, ...]  # attributes computed by expressions, in order
    statics: tuple[tuple[str, str, Instance], ...]  # (short name, IRI, instance)
    explicit: Explicit = False
    timestamp: bool = True
    decoder: str | None = None
    context: dict[str, Any] = field(default_factory=dict)  # id, type... for expressions
    mapped: frozenset[str] = frozenset()  # short names of every provisioned attribute
    commands: tuple[str, ...] = ()  # provisioned command names (attributes of the entity)

    @property
    def tenant(self) -> str:
        """The device's tenant."""
        return self.device.tenant


def _setting(device: Device, group: ServiceGroup | None, key: str) -> Any:
    if key in device.body:
        return device.body[key]
    return group.body.get(key) if group is not None else None


def _merged(device: Device, group: ServiceGroup | None, key: str) -> list[dict[str, Any]]:
    """The group's entries of an attribute list, overridden by the device's (same name)."""
    out: dict[str, dict[str, Any]] = {}
    for source in ((group.body if group else {}), device.body):
        for entry in source.get(key) or ():
            out[entry.get("object_id") or entry["name"]] = entry
    return list(out.values())


def compile_plan(device: Device, group: ServiceGroup | None, tm: TermMap) -> Plan:
    """The plan of a device (with its group, if any)."""
    type_iri = tm.expand(device.entity_type)
    by_object: dict[str, list[AttrPlan]] = {}
    expressions: list[AttrPlan] = []
    mapped: set[str] = set()
    for entry in _merged(device, group, "attributes"):
        if entry.get("type") == COMMAND:
            continue
        plan = _attribute(entry, tm, device.entity_type)
        mapped.add(plan.name)
        (expressions.append(plan) if plan.expression else
         by_object.setdefault(plan.object_id, []).append(plan))
    statics = tuple(_static(e, tm) for e in _merged(device, group, "static_attributes"))
    mapped |= {name for name, _, _ in statics}
    decoder = _setting(device, group, "payload_decoder")
    timestamp = _setting(device, group, "timestamp")
    context = {"id": device.device_id, "entity_name": device.entity_name,
               "type": device.entity_type, "service": device.tenant,
               "subservice": device.service_path}
    return Plan(device, group, device.entity_name, type_iri,
                {k: tuple(v) for k, v in by_object.items()}, tuple(expressions), statics,
                _explicit(_setting(device, group, "explicitAttrs")),
                timestamp is not False, decoder, context, frozenset(mapped),
                command_names(device, group))


def command_names(device: Device, group: ServiceGroup | None) -> tuple[str, ...]:
    """The commands of a device: its and its group's `commands`, and `command` attributes."""
    names = [e["name"] for key in ("commands", "attributes")
             for e in _merged(device, group, key) if key == "commands" or
             e.get("type") == COMMAND]
    return tuple(dict.fromkeys(names))


def _attribute(entry: dict[str, Any], tm: TermMap, device_type: str) -> AttrPlan:
    name = entry["name"]
    kind, coerce = kind_of(entry.get("type"))
    if tm.expand(name) in GEO_CORE_ATTRS:
        kind = GEO_PROPERTY  # location & co. are GeoProperties whatever the provisioning says
    unit, dataset, subs = _metadata(entry.get("metadata") or {}, tm)
    target = None
    if entry.get("entity_name"):
        target = (entry["entity_name"], tm.expand(entry.get("entity_type") or device_type))
    text = entry.get("expression")
    return AttrPlan(name=name, object_id=entry.get("object_id") or name, iri=tm.expand(name),
                    kind=kind, coerce=coerce, unit=unit,
                    dataset_id=entry.get("datasetId") or dataset, subs=subs,
                    expression=compile_expression(text) if text else None,
                    skip=entry.get("skipValue"), target=target)


def _metadata(meta: dict[str, Any], tm: TermMap
              ) -> tuple[str | None, str | None, tuple[tuple[str, Instance], ...]]:
    unit = dataset = None
    subs: list[tuple[str, Instance]] = []
    for key, member in meta.items():
        value = member.get("value") if isinstance(member, dict) else member
        if key == "unitCode":
            unit = str(value)
        elif key == "datasetId":
            dataset = str(value)
        else:
            subs.append((tm.expand(key), {"type": PROPERTY, "value": value}))
    return unit, dataset, tuple(subs)


def _static(entry: dict[str, Any], tm: TermMap) -> tuple[str, str, Instance]:
    kind, coerce = kind_of(entry.get("type"))
    if tm.expand(entry["name"]) in GEO_CORE_ATTRS:
        kind = GEO_PROPERTY
    inst: Instance = {"type": kind, value_key(kind): checked(kind, coerce, entry["value"])}
    unit, dataset, subs = _metadata(entry.get("metadata") or {}, tm)
    if unit:
        inst["unitCode"] = unit
    if entry.get("datasetId") or dataset:
        inst["datasetId"] = entry.get("datasetId") or dataset
    for iri, sub in subs:
        inst[iri] = sub
    return entry["name"], tm.expand(entry["name"]), inst


def _explicit(value: Any) -> Explicit:
    if isinstance(value, str):
        return compile_expression(value)
    if isinstance(value, list):
        return names_of(value)
    return bool(value)


def names_of(items: Iterable[Any]) -> frozenset[str]:
    """The attribute names (or `{object_id}` entries, as `object_id:<id>`) of a list."""
    out: set[str] = set()
    for item in items:
        if isinstance(item, str):
            out.add(item)
        elif isinstance(item, dict) and isinstance(item.get("object_id"), str):
            out.add("object_id:" + item["object_id"])
    return frozenset(out)
