"""Read what sources answer into internal form, trusting nothing of it.

Entities are checked for the shape merging and rendering rely on and expanded, in the terms
of the registration's @context (`relayed_entity`); /types and /attributes details
become TypeInfo and AttributeInfo. Anything else raises, so the source is reported as having
given an unusable answer instead of corrupting the merged one.
"""

from __future__ import annotations

from typing import Any

from urbis.broker.federation import MalformedAnswer, json_of
from urbis.broker.federation_client import SourceAnswer
from urbis.context.federation_parse import relayed_entity
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity
from urbis.storage.base import AttributeInfo, TypeInfo

COUNT_HEADER = "ngsild-results-count"


def decode_entity(answer: SourceAnswer, tm: TermMap) -> Entity:
    """The answer of GET /entities/{id} (normalized, with system attributes)."""
    return relayed_entity(json_of(answer), tm)


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedAnswer(f"{what} is not an array of names")
    return value


def _items(answer: SourceAnswer) -> list[dict[str, Any]]:
    body = json_of(answer)
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise MalformedAnswer("a details answer is not an array of objects")
    return body


def decode_types(answer: SourceAnswer, tm: TermMap) -> list[TypeInfo]:
    """The answer of GET /types?details=true (EntityType objects)."""
    out = []
    for item in _items(answer):
        name = item.get("typeName", item.get("id"))
        if not isinstance(name, str):
            raise MalformedAnswer("an EntityType has no typeName")
        attrs = _names(item.get("attributeNames", []), "attributeNames")
        out.append(TypeInfo(tm.expand(name), 0, {tm.expand(a): set() for a in attrs}))
    return out


def decode_attributes(answer: SourceAnswer, tm: TermMap) -> list[AttributeInfo]:
    """The answer of GET /attributes?details=true (Attribute objects)."""
    out = []
    for item in _items(answer):
        name, count = item.get("attributeName", item.get("id")), item.get("attributeCount", 0)
        if not isinstance(name, str) or not isinstance(count, int):
            raise MalformedAnswer("an Attribute has no attributeName or a bad attributeCount")
        types = {tm.expand(t) for t in _names(item.get("typeNames", []), "typeNames")}
        kinds = set(_names(item.get("attributeTypes", []), "attributeTypes"))
        out.append(AttributeInfo(tm.expand(name), count, types, kinds))
    return out
