"""Read an entity a context source answered (normalized, with system attributes), fast.

A source's entity is relayed to the caller, not stored, so what it needs is the shape the
merge and the renderers rely on: an id and types, attributes as one instance or an array of
instances, each a JSON object of a known attribute type with its value member in the right
form (a languageMap object, a list for ListProperty ...), sub-attributes likewise, nesting
bounded. Names are expanded with the term map of the @context the source was asked with
(VocabProperty values and objectType too); members such as observedAt, datasetId, createdAt
and modifiedAt are kept as they are (merging compares only valid DateTimes). Checked in one
pass, several times cheaper than `parse_entity` (which also validates geometries, URIs and
dates of what will be stored); anything else raises BadRequestData, and the source is
reported as unusable.
"""

from __future__ import annotations

from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.jsonld import TermMap
from urbis.context.model import (
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
from urbis.context.normalize import MAX_DEPTH, check_uri, parse_scopes

_NOT_ATTRIBUTES = frozenset({"id", "@id", "type", "@type", "scope", "@context", "createdAt",
                             "modifiedAt", "deletedAt"})
# Attribute types whose value member needs no check nor expansion.
_PLAIN = frozenset({PROPERTY, JSON_PROPERTY})


def relayed_entity(body: Any, tm: TermMap) -> Entity:
    """The entity of a source's answer, in internal form; BadRequestData if malformed."""
    if type(body) is not dict:
        raise BadRequestData("an entity is not a JSON object")
    entity_id = check_uri(body.get("id"), "entity id")
    raw = body.get("type")
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadRequestData(f"entity {entity_id} has no type")
    expand = tm.expand
    attrs: dict[str, list[Instance]] = {}
    for key, value in body.items():
        if key in _NOT_ATTRIBUTES:
            continue
        if type(value) is list:
            if not value:
                raise BadRequestData(f"attribute {key} is an empty array")
            attrs[expand(key)] = [_instance(key, v, tm, 0) for v in value]
        else:
            attrs[expand(key)] = [_instance(key, value, tm, 0)]
    types = [tm.expand_value_iri(n) for n in names]
    return Entity(entity_id, types if len(types) == 1 else list(dict.fromkeys(types)), attrs,
                  parse_scopes(body.get("scope")), _text(body.get("createdAt")),
                  _text(body.get("modifiedAt")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _instance(key: str, value: Any, tm: TermMap, depth: int) -> Instance:
    if type(value) is not dict:
        raise BadRequestData(f"attribute {key} is not in the normalized form")
    kind = value.get("type")
    member = VALUE_KEYS.get(kind) if isinstance(kind, str) else None
    if member is None or value.get(member) is None:
        raise BadRequestData(f"attribute {key} has no known type or no value")
    if kind in _PLAIN and INSTANCE_KEYS.issuperset(value):
        return value  # the common case: a fresh JSON object of the right shape, kept as is
    if kind == GEO_PROPERTY and INSTANCE_KEYS.issuperset(value):
        _shape(key, kind, value, tm)
        return value
    inst: Instance = {}
    for k, v in value.items():
        if k in INSTANCE_KEYS:
            inst[k] = v
        elif k != "@context":
            if depth >= MAX_DEPTH:
                raise BadRequestData(f"attribute {key} is nested too deeply")
            inst[tm.expand(k)] = _instance(k, v, tm, depth + 1)
    _shape(key, str(kind), inst, tm)
    return inst


def _shape(key: str, kind: str, inst: Instance, tm: TermMap) -> None:
    """Check (and expand) the value member of the attribute types that need it."""
    if kind == RELATIONSHIP:
        _strings(key, inst["object"], allow_one=True)
        if isinstance(inst.get("objectType"), str):
            inst["objectType"] = tm.expand_value_iri(inst["objectType"])
    elif kind == VOCAB_PROPERTY:
        vocab = inst["vocab"]
        _strings(key, vocab, allow_one=True)
        inst["vocab"] = (tm.expand_value_iri(vocab) if isinstance(vocab, str)
                         else [tm.expand_value_iri(v) for v in vocab])
    elif kind == GEO_PROPERTY and not (type(inst["value"]) is dict and
                                       isinstance(inst["value"].get("type"), str)):
        raise BadRequestData(f"the GeoProperty {key} has no GeoJSON geometry")
    elif kind == LANGUAGE_PROPERTY and type(inst["languageMap"]) is not dict:
        raise BadRequestData(f"the languageMap of {key} is not an object")
    elif kind in (LIST_PROPERTY, LIST_RELATIONSHIP) and type(
            inst[VALUE_KEYS[kind]]) is not list:
        raise BadRequestData(f"{kind} {key} has no list")


def _strings(key: str, value: Any, allow_one: bool) -> None:
    if isinstance(value, str) and allow_one:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequestData(f"attribute {key} should hold a string or strings")
