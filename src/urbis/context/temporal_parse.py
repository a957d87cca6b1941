"""Parse the temporal representation of an entity (ETSI GS CIM 009 clause 4.5.7) for writes.

Each attribute is an array of instances (a single instance object is taken as an array of
one); instances of one attribute may share a datasetId, as they are values at different
times. System members (`createdAt`, `modifiedAt`, `instanceId`, `deletedAt`) are ignored.
"""

from __future__ import annotations

from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity, Instance
from urbis.context.normalize import (
    check_name,
    check_uri,
    expand_types,
    parse_instance,
    parse_scopes,
)
from urbis.context.temporal_records import Record, record_of

_NOT_ATTRIBUTES = frozenset({"id", "@id", "type", "@type", "scope", "@context", "createdAt",
                             "modifiedAt", "deletedAt", "instanceId"})
MAX_INSTANCES = 100_000


def parse_temporal_entity(body: Any, tm: TermMap, now: int, *, entity_id: str | None = None,
                          require_type: bool = True) -> tuple[Entity, list[Record]]:
    """The entity (id, types, scopes) and the instance records of a temporal entity body."""
    if not isinstance(body, dict):
        raise BadRequestData("a temporal entity must be a JSON object")
    raw_id = body.get("id", body.get("@id", entity_id))
    if raw_id is None:
        raise BadRequestData("entity id is missing")
    eid = check_uri(raw_id, "entity id")
    if entity_id is not None and eid != entity_id:
        raise BadRequestData(f"entity id {eid} in the body differs from {entity_id} in the URL")
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None and require_type:
        raise BadRequestData(f"entity {eid} has no type")
    types = expand_types(raw_type, tm) if raw_type is not None else []
    entity = Entity(eid, types, scopes=parse_scopes(body.get("scope")))
    records: list[Record] = []
    for key, value in body.items():
        if key in _NOT_ATTRIBUTES:
            continue
        iri = tm.expand(check_name(key))
        for inst in parse_instances(iri, value, tm):
            records.append(record_of(iri, inst, now))
    if len(records) > MAX_INSTANCES:
        raise BadRequestData(f"at most {MAX_INSTANCES} attribute instances per request")
    return entity, records


def parse_instances(iri: str, value: Any, tm: TermMap) -> list[Instance]:
    """One attribute of a temporal representation: its instances."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData(f"attribute {iri} has no instances")
    return [parse_instance(iri, item, tm) for item in items]


def parse_instance_fragment(attr: str, iri: str, body: Any, tm: TermMap) -> Instance:
    """The body of PATCH .../attrs/{attrId}/{instanceId}: an instance, or {attrId: instance}."""
    if not isinstance(body, dict):
        raise BadRequestData("the attribute instance must be a JSON object")
    inner = body.get(attr, body.get(iri)) if len(body) == 1 else None
    value = inner if isinstance(inner, dict) else body
    inst = parse_instance(iri, {k: v for k, v in value.items() if k not in _NOT_ATTRIBUTES
                                or k == "type"}, tm)
    return inst
