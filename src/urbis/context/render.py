"""Render internal entities in the NGSI-LD representations: normalized, concise, keyValues."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from urbis.context.jsonld import TermMap
from urbis.context.model import (
    GEO_PROPERTY,
    INSTANCE_KEYS,
    LANGUAGE_PROPERTY,
    PROPERTY,
    RELATIONSHIP,
    VALUE_KEYS,
    VOCAB_PROPERTY,
    Entity,
    Instance,
)

NORMALIZED = "normalized"
CONCISE = "concise"
KEY_VALUES = "keyValues"
FORMATS = frozenset({NORMALIZED, CONCISE, KEY_VALUES})
_SYS_KEYS = ("createdAt", "modifiedAt")


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How to render: format, system attributes, projection and language."""

    format: str = NORMALIZED
    sys_attrs: bool = False
    attrs: Collection[str] | None = None  # expanded attribute IRIs to keep (attrs / pick)
    omit: Collection[str] | None = None  # expanded attribute IRIs to drop
    lang: str | None = None
    keep_id: bool = True
    keep_type: bool = True


def render(entity: Entity, tm: TermMap, opts: RenderOptions) -> dict[str, Any]:
    """One entity as a compacted NGSI-LD JSON object."""
    out: dict[str, Any] = {}
    if opts.keep_id:
        out["id"] = entity.id
    if opts.keep_type:
        types = [tm.compact_value_iri(t) for t in entity.types]
        out["type"] = types[0] if len(types) == 1 else types
    if entity.scopes:
        out["scope"] = entity.scopes[0] if len(entity.scopes) == 1 else entity.scopes
    if opts.sys_attrs and opts.format != KEY_VALUES:
        out["createdAt"] = entity.created_at
        out["modifiedAt"] = entity.modified_at
    for name, instances in entity.attrs.items():
        if opts.attrs is not None and name not in opts.attrs:
            continue
        if opts.omit is not None and name in opts.omit:
            continue
        out[tm.compact(name)] = render_attribute(instances, tm, opts)
    return out


def render_attribute(instances: list[Instance], tm: TermMap, opts: RenderOptions) -> Any:
    """One attribute (all its instances) in the requested format."""
    if opts.format == KEY_VALUES:
        default = next((i for i in instances if "datasetId" not in i), instances[0])
        return simplified_value(default, tm, opts.lang)
    rendered = [render_instance(i, tm, opts) for i in instances]
    return rendered[0] if len(rendered) == 1 else rendered


def render_instance(inst: Instance, tm: TermMap, opts: RenderOptions) -> Any:
    """One instance (with its sub-attributes), normalized or concise."""
    out: dict[str, Any] = {}
    attr_type = inst.get("type", PROPERTY)
    for key, value in inst.items():
        if key in INSTANCE_KEYS:
            if key in _SYS_KEYS and not opts.sys_attrs:
                continue
            if key == "vocab":
                value = _compact_vocab(value, tm)
            out[key] = value
        else:
            out[tm.compact(key)] = render_instance(value, tm, opts)
    if opts.lang is not None and attr_type == LANGUAGE_PROPERTY:
        _apply_lang(out, opts.lang)
        attr_type = PROPERTY
    if opts.format == CONCISE:
        return _concise(out, attr_type)
    return out


def _apply_lang(out: dict[str, Any], lang: str) -> None:
    lang_map = out.pop("languageMap", {})
    tag, text = pick_language(lang_map, lang)
    out["type"] = PROPERTY
    out["value"] = text
    if tag is not None:
        out["lang"] = tag


def pick_language(lang_map: dict[str, Any], wanted: str) -> tuple[str | None, Any]:
    """The best (tag, text) of a languageMap for a `lang` parameter value (e.g. `fr,en;q=0.8`)."""
    for part in wanted.split(","):
        tag = part.split(";")[0].strip()
        if tag == "*" and lang_map:
            first = next(iter(lang_map))
            return first, lang_map[first]
        if tag in lang_map:
            return tag, lang_map[tag]
    if "@none" in lang_map:
        return "@none", lang_map["@none"]
    if lang_map:
        first = next(iter(lang_map))
        return first, lang_map[first]
    return None, None


def _concise(out: dict[str, Any], attr_type: str) -> Any:
    out.pop("type", None)
    extra = [k for k in out if k != VALUE_KEYS.get(attr_type)]
    if attr_type in (PROPERTY, GEO_PROPERTY) and not extra and "value" in out:
        value = out["value"]
        if not (isinstance(value, dict) and attr_type == PROPERTY):
            return value
    if attr_type == PROPERTY and "value" in out and isinstance(out["value"], dict) and not extra:
        return {"value": out["value"]}
    return out


def _compact_vocab(value: Any, tm: TermMap) -> Any:
    if isinstance(value, list):
        return [tm.compact_value_iri(v) for v in value]
    return tm.compact_value_iri(value) if isinstance(value, str) else value


def simplified_value(inst: Instance, tm: TermMap, lang: str | None = None) -> Any:
    """The keyValues (simplified) value of an instance."""
    attr_type = inst.get("type", PROPERTY)
    if attr_type == RELATIONSHIP:
        return inst.get("object")
    if attr_type == LANGUAGE_PROPERTY:
        if lang is not None:
            return pick_language(inst.get("languageMap", {}), lang)[1]
        return {"languageMap": inst.get("languageMap")}
    if attr_type == VOCAB_PROPERTY:
        return {"vocab": _compact_vocab(inst.get("vocab"), tm)}
    key = VALUE_KEYS.get(attr_type, "value")
    if attr_type in (PROPERTY, GEO_PROPERTY):
        return inst.get(key)
    return {key: inst.get(key)}
