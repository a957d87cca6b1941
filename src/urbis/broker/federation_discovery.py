"""/types and /attributes over this broker and its sources: merging the details lists.

A source's entity types are kept when its registration covers them (an item without
entities covers every type), with the attributes it covers; attribute details likewise.
Types unite their attribute names (a source's type count is not known: `entityCount` counts
the local entities); attributes add their counts and unite entity types and attribute types.
"""

from __future__ import annotations

from collections.abc import Iterable

from urbis.context.federation import covered_attrs
from urbis.context.registration import Registration
from urbis.storage.base import AttributeInfo, TypeInfo


def restrict_types(infos: list[TypeInfo], reg: Registration) -> list[TypeInfo]:
    """The types (and their attributes) of a source's answer its registration covers."""
    out = []
    for info in infos:
        covered = covered_attrs(reg, None, [info.type])
        if covered is not None and not covered:
            continue
        if covered is not None:
            info.attributes = {k: v for k, v in info.attributes.items() if k in covered}
        out.append(info)
    return out


def restrict_attributes(infos: list[AttributeInfo], reg: Registration) -> list[AttributeInfo]:
    """The attributes of a source's answer its registration covers (for some of its types)."""
    out = []
    for info in infos:
        types = {t for t in info.types if _covers(reg, t, info.name)}
        if types or (not info.types and _covers(reg, None, info.name)):
            info.types = types
            out.append(info)
    return out


def _covers(reg: Registration, type_iri: str | None, attr: str) -> bool:
    covered = covered_attrs(reg, None, None if type_iri is None else [type_iri])
    return covered is None or attr in covered


def merge_types(parts: Iterable[list[TypeInfo]]) -> list[TypeInfo]:
    """Types by IRI, attribute names united, local counts kept; in type order."""
    out: dict[str, TypeInfo] = {}
    for infos in parts:
        for info in infos:
            have = out.get(info.type)
            if have is None:
                out[info.type] = TypeInfo(info.type, info.count, dict(info.attributes))
                continue
            have.count += info.count
            for name, kinds in info.attributes.items():
                have.attributes.setdefault(name, set()).update(kinds)
    return [out[k] for k in sorted(out)]


def merge_attributes(parts: Iterable[list[AttributeInfo]]) -> list[AttributeInfo]:
    """Attributes by IRI, counts added, types united; in name order."""
    out: dict[str, AttributeInfo] = {}
    for infos in parts:
        for info in infos:
            have = out.get(info.name)
            if have is None:
                out[info.name] = AttributeInfo(info.name, info.count, set(info.types),
                                               set(info.attribute_types))
                continue
            have.count += info.count
            have.types |= info.types
            have.attribute_types |= info.attribute_types
    return [out[k] for k in sorted(out)]
