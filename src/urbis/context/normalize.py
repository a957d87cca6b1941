"""Validate NGSI-LD payloads (normalized or concise) and expand them into the internal form."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.geo import validate_geometry
from urbis.context.jsonld import TermMap
from urbis.context.model import (
    GEO_CORE_ATTRS,
    GEO_PROPERTY,
    INSTANCE_KEYS,
    JSON_PROPERTY,
    LANGUAGE_PROPERTY,
    LIST_PROPERTY,
    LIST_RELATIONSHIP,
    PROPERTY,
    RELATIONSHIP,
    VALUE_KEYS,
    VOCAB_PROPERTY,
    Entity,
    Instance,
)

NULL_URI = "urn:ngsi-ld:null"
_GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
     "GeometryCollection"}
)
_FORBIDDEN_NAME = re.compile(r"[<>\"'=;()\s\\]")
_SCOPE = re.compile(r"^(/[^/#+\s]+)+$|^/$")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:[^\s<>\"]*\Z")
_SYS = ("createdAt", "modifiedAt", "deletedAt", "instanceId")
MAX_DEPTH = 8


def check_uri(value: Any, what: str) -> str:
    """An absolute URI, or BadRequestData naming what was wrong."""
    if not isinstance(value, str) or _URI.match(value) is None:
        raise BadRequestData(f"{what} must be an absolute URI, got {value!r:.200}")
    return value


_GOOD_DATETIMES: set[str] = set()


def _valid_datetime(value: str) -> bool:
    if not value or not value[0].isdigit():
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if len(_GOOD_DATETIMES) > 10_000:
        _GOOD_DATETIMES.clear()
    _GOOD_DATETIMES.add(value)
    return True


def check_name(name: Any, what: str = "attribute name") -> str:
    """A valid attribute or type name (term, compact IRI or IRI)."""
    if not isinstance(name, str) or not name or _FORBIDDEN_NAME.search(name):
        raise BadRequestData(f"invalid {what}: {name!r:.200}")
    return name


def check_datetime(value: Any, what: str) -> str:
    """An ISO 8601 DateTime string."""
    if isinstance(value, str) and (value in _GOOD_DATETIMES or _valid_datetime(value)):
        return value
    raise BadRequestData(f"{what} must be an ISO 8601 DateTime, got {value!r:.200}")


def expand_types(value: Any, tm: TermMap) -> list[str]:
    """The entity type member (string or list) expanded to IRIs."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise BadRequestData("entity type must be a non-empty string or array of strings")
    out: list[str] = []
    for name in names:
        iri = tm.expand(check_name(name, "entity type"))
        if iri not in out:
            out.append(iri)
    return out


def parse_scopes(value: Any) -> list[str] | None:
    """The scope member: one scope string or a list of them."""
    if value is None:
        return None
    scopes = [value] if isinstance(value, str) else value
    if not isinstance(scopes, list) or not all(
            isinstance(s, str) and _SCOPE.match(s) for s in scopes):
        raise BadRequestData(f"invalid scope {value!r:.200}: scopes look like /A/B")
    return list(dict.fromkeys(scopes))


def parse_entity(body: Any, tm: TermMap, *, require_id: bool = True,
                 require_type: bool = True, entity_id: str | None = None,
                 allow_null: bool = False) -> Entity:
    """Validate and expand one entity payload; nothing about it is trusted."""
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    raw_id = body.get("id", body.get("@id", entity_id))
    if raw_id is None and not require_id:
        raw_id = entity_id
    if raw_id is None:
        raise BadRequestData("entity id is missing")
    eid = check_uri(raw_id, "entity id")
    if entity_id is not None and eid != entity_id:
        raise BadRequestData(f"entity id {eid} in the body differs from {entity_id} in the URL")
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None and require_type:
        raise BadRequestData(f"entity {eid} has no type")
    types = expand_types(raw_type, tm) if raw_type is not None else []
    entity = Entity(id=eid, types=types, scopes=parse_scopes(body.get("scope")))
    entity.attrs = parse_attributes(body, tm, allow_null=allow_null)
    return entity


def parse_attributes(body: dict[str, Any], tm: TermMap, *, allow_null: bool = False
                     ) -> dict[str, list[Instance]]:
    """Every attribute member of an entity fragment, expanded."""
    attrs: dict[str, list[Instance]] = {}
    for key, value in body.items():
        if key in _NOT_ATTRIBUTES:
            continue
        iri = tm.expand(key if key in _GOOD_NAMES else _remember(check_name(key)))
        simple = _simple_property(value) if iri not in GEO_CORE_ATTRS else None
        attrs[iri] = [simple] if simple is not None else parse_attribute(
            iri, value, tm, allow_null=allow_null)
    return attrs


_NOT_ATTRIBUTES = frozenset({"id", "@id", "type", "@type", "scope", "@context", *_SYS})
_GOOD_NAMES: set[str] = set()
_SIMPLE_KEYS = frozenset({"type", "value", "observedAt", "unitCode"})


def _remember(name: str) -> str:
    if len(_GOOD_NAMES) < 50_000:
        _GOOD_NAMES.add(name)
    return name


def _simple_property(value: Any) -> Instance | None:
    """The fast path: a plain Property (scalar value, optional observedAt / unitCode)."""
    if type(value) is not dict or value.get("type") != PROPERTY or not _SIMPLE_KEYS.issuperset(
            value):
        return None
    member = value.get("value")
    if member is None or member == NULL_URI or type(member) is dict:
        return None
    inst: Instance = {"type": PROPERTY, "value": member}
    if "observedAt" in value:
        inst["observedAt"] = check_datetime(value["observedAt"], "observedAt")
    if "unitCode" in value:
        unit = value["unitCode"]
        if not isinstance(unit, str) or not unit:
            raise BadRequestData("unitCode must be a non-empty string")
        inst["unitCode"] = unit
    return inst


def parse_attribute(iri: str, value: Any, tm: TermMap, *, allow_null: bool = False
                    ) -> list[Instance]:
    """One attribute member (single instance or multi-attribute array) as instances."""
    if isinstance(value, list) and value and all(_looks_like_instance(v) for v in value):
        instances = [parse_instance(iri, v, tm, allow_null=allow_null) for v in value]
        seen: set[Any] = set()
        for inst in instances:
            ds = inst.get("datasetId")
            if ds in seen:
                raise BadRequestData(f"attribute {iri} has two instances with datasetId {ds}")
            seen.add(ds)
        return instances
    return [parse_instance(iri, value, tm, allow_null=allow_null)]


def _type_of(value: dict[str, Any]) -> str | None:
    kind = value.get("type")
    return kind if isinstance(kind, str) else None


def _looks_like_instance(value: Any) -> bool:
    return isinstance(value, dict) and (
        _type_of(value) in VALUE_KEYS or any(k in value for k in VALUE_KEYS.values())
    )


def infer_type(iri: str, value: Any) -> str | None:
    """The attribute type of a concise (type-less) fragment, or None if it is a bare value."""
    if not isinstance(value, dict):
        return None
    for attr_type, key in VALUE_KEYS.items():
        if key in value and attr_type != GEO_PROPERTY:
            if key == "value" and _is_geometry(value["value"]):
                return GEO_PROPERTY
            return attr_type
    return GEO_PROPERTY if _is_geometry(value) else None


def _is_geometry(value: Any) -> bool:
    return isinstance(value, dict) and _type_of(value) in _GEOMETRY_TYPES and (
        "coordinates" in value or "geometries" in value
    )


def parse_instance(iri: str, value: Any, tm: TermMap, depth: int = 0, *,
                   allow_null: bool = False) -> Instance:
    """Validate one attribute instance (normalized or concise) into internal form."""
    if depth > MAX_DEPTH:
        raise BadRequestData(f"attribute {iri} is nested too deeply")
    if value is None or value == NULL_URI:
        if allow_null:
            return {"type": PROPERTY, "value": NULL_URI}
        raise BadRequestData(f"attribute {iri} has a null value")
    if isinstance(value, dict) and _type_of(value) in VALUE_KEYS:
        attr_type = str(value["type"])
    elif isinstance(value, dict) and "type" in value and not _is_geometry(value):
        raise BadRequestData(f"attribute {iri} has an unknown type {value['type']!r:.100}")
    else:
        inferred = infer_type(iri, value)
        if inferred is None:
            if iri in GEO_CORE_ATTRS:
                raise BadRequestData(f"{iri} must be a GeoProperty")
            return {"type": PROPERTY, "value": _check_value(iri, value)}
        attr_type = inferred
        if attr_type == GEO_PROPERTY and _is_geometry(value):
            value = {"value": value}
    if iri in GEO_CORE_ATTRS and attr_type != GEO_PROPERTY:
        raise BadRequestData(f"{iri} must be a GeoProperty")
    inst = _instance_value(iri, attr_type, value, tm, allow_null)
    for key, member in value.items():
        if key in _SKIP:
            continue
        if key in INSTANCE_KEYS:
            _meta(iri, inst, key, member)
        elif key != "@context":
            sub = tm.expand(check_name(key, "sub-attribute name"))
            inst[sub] = parse_instance(sub, member, tm, depth + 1, allow_null=allow_null)
    return inst


def _check_value(iri: str, value: Any) -> Any:
    if value is None:
        raise BadRequestData(f"attribute {iri} has a null value")
    return value


def _instance_value(iri: str, attr_type: str, value: dict[str, Any], tm: TermMap,
                    allow_null: bool) -> Instance:
    key = VALUE_KEYS[attr_type]
    if key not in value:
        raise BadRequestData(f"{attr_type} {iri} has no '{key}' member")
    member = value[key]
    if member is None or (member == NULL_URI and allow_null):
        if allow_null:
            return {"type": attr_type, key: NULL_URI}
        raise BadRequestData(f"{attr_type} {iri} has a null '{key}'")
    return {"type": attr_type, key: _CHECKS[attr_type](iri, member, tm)}


def _property(iri: str, member: Any, tm: TermMap) -> Any:
    return member


def _relationship(iri: str, member: Any, tm: TermMap) -> Any:
    if isinstance(member, list):
        return [check_uri(m, f"object of {iri}") for m in member]
    return check_uri(member, f"object of Relationship {iri}")


def _geo(iri: str, member: Any, tm: TermMap) -> Any:
    return validate_geometry(member)


def _language(iri: str, member: Any, tm: TermMap) -> Any:
    ok = isinstance(member, dict) and member and all(
        isinstance(k, str) and (isinstance(v, str) or (
            isinstance(v, list) and all(isinstance(x, str) for x in v)))
        for k, v in member.items()
    )
    if not ok:
        raise BadRequestData(f"languageMap of {iri} must map language tags to strings")
    return member


def _vocab(iri: str, member: Any, tm: TermMap) -> Any:
    if isinstance(member, str):
        return tm.expand(check_name(member, "vocab"))
    if isinstance(member, list) and member and all(isinstance(m, str) for m in member):
        return [tm.expand(check_name(m, "vocab")) for m in member]
    raise BadRequestData(f"vocab of {iri} must be a string or array of strings")


def _json(iri: str, member: Any, tm: TermMap) -> Any:
    return member


def _list(iri: str, member: Any, tm: TermMap) -> Any:
    if not isinstance(member, list):
        raise BadRequestData(f"valueList of {iri} must be an array")
    return member


def _object_list(iri: str, member: Any, tm: TermMap) -> Any:
    if not isinstance(member, list):
        raise BadRequestData(f"objectList of {iri} must be an array")
    out = []
    for item in member:
        target = item.get("object") if isinstance(item, dict) else item
        out.append({"object": check_uri(target, f"objectList of {iri}")})
    return out


_CHECKS = {
    PROPERTY: _property,
    RELATIONSHIP: _relationship,
    GEO_PROPERTY: _geo,
    LANGUAGE_PROPERTY: _language,
    VOCAB_PROPERTY: _vocab,
    JSON_PROPERTY: _json,
    LIST_PROPERTY: _list,
    LIST_RELATIONSHIP: _object_list,
}


_SKIP = frozenset({"type", *VALUE_KEYS.values(), *_SYS})


def _meta(iri: str, inst: Instance, key: str, member: Any) -> None:
    if key == "observedAt":
        inst[key] = check_datetime(member, f"observedAt of {iri}")
    elif key == "datasetId":
        inst[key] = check_uri(member, f"datasetId of {iri}")
    elif key == "unitCode":
        if not isinstance(member, str) or not member:
            raise BadRequestData(f"unitCode of {iri} must be a string")
        inst[key] = member
    elif key == "objectType" or key == "lang":
        inst[key] = member
