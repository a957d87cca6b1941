"""Validate registration payloads (create, and update fragments) into Registrations.

Every member is checked on its own (clause 5.2.9 and the data types it uses) and then the whole
registration against the rules of its mode (clause 4.3.6): an exclusive registration names
entity ids (no idPattern) and attribute names, an auxiliary one only read operations. Any
problem is a BadRequestData naming the member; nothing is half-applied. Read-only members a
client may send back (status, timesSent, createdAt, ...) are ignored; any other member is an
extra registration property, kept under its expanded name (clause 5.2.9: usable with `q` and
`csf`). A null member is absent at creation and deletes the member in an update.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from urbis.context.errors import BadRequestData
from urbis.context.geo import validate_geometry
from urbis.context.jsonld import TermMap
from urbis.context.normalize import check_datetime, check_name, check_uri, parse_scopes
from urbis.context.query.q import compile_regex, datetime_key
from urbis.context.registration import (
    AUXILIARY,
    EXCLUSIVE,
    MODES,
    REGISTRATION,
    EntityInfo,
    Management,
    Registration,
    RegistrationInfo,
    TimeInterval,
)
from urbis.context.registration_ops import READ_ONLY, check_operations, expand_operations

MAX_TEXT = 4096
MAX_ITEMS = 1000  # information items and entities of one registration, each
MAX_PAIRS = 64
_TENANT = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")
_DURATION = re.compile(r"P(?!$)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?"
                       r"(?:\d+(?:\.\d+)?D)?(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?"
                       r"(?:\d+(?:\.\d+)?S)?)?")
_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
READ_ONLY_MEMBERS = frozenset({"id", "type", "@context", "status", "timesSent", "timesFailed",
                               "lastSuccess", "lastFailure", "createdAt", "modifiedAt",
                               "deletedAt"})
Parser = Callable[[Any, TermMap, str], Any]  # (value, term map, now) -> field value


def parse_registration(body: Any, tm: TermMap, now: str, new_id: str) -> Registration:
    """A new Registration from a create payload; `new_id` is used when the body has no id."""
    body = _object(body, "the registration")
    if body.get("type") != REGISTRATION:
        raise BadRequestData(f"the type of a registration must be {REGISTRATION!r}, not "
                             f"{body.get('type')!r:.60}")
    reg_id = new_id if body.get("id") is None else check_uri(body["id"], "registration id")
    for member in ("information", "endpoint"):
        if body.get(member) is None:
            raise BadRequestData(f"a registration needs {member}")
    fields = _members(body, tm, now, patch=False)
    reg = Registration(id=reg_id, created_at=now, modified_at=now, **fields,
                       properties=_properties(body, tm, {}))
    validate(reg)
    return reg


def patch_registration(reg: Registration, body: Any, tm: TermMap, now: str) -> Registration:
    """The registration with an update fragment applied (clause 5.9.3); null deletes."""
    body = _object(body, "the registration fragment")
    if "id" in body and body["id"] != reg.id:
        raise BadRequestData(f"the id of a registration cannot change ({body['id']!r:.100})")
    if "type" in body and body["type"] != REGISTRATION:
        raise BadRequestData(f"the type of a registration is {REGISTRATION!r}")
    for member in ("information", "endpoint"):
        if member in body and body[member] is None:
            raise BadRequestData(f"{member} is mandatory and cannot be removed")
    fields = _members(body, tm, now, patch=True)
    updated = replace(reg, modified_at=now, **fields,
                      properties=_properties(body, tm, reg.properties))
    validate(updated)
    return updated


def validate(reg: Registration) -> None:
    """The rules of the registration's mode (clause 4.3.6) and between members."""
    if reg.effective_mode == EXCLUSIVE:
        _check_exclusive(reg)
    if reg.effective_mode == AUXILIARY and reg.operations is not None:
        writes = sorted(expand_operations(reg.operations) - READ_ONLY)
        if writes:
            raise BadRequestData(f"an auxiliary registration supports only retrieval "
                                 f"operations, not {', '.join(writes[:5])}")
    for name, interval in (("observationInterval", reg.observation_interval),
                           ("managementInterval", reg.management_interval)):
        if interval is not None and interval.end_at is not None and \
                (datetime_key(interval.end_at) or "") < (datetime_key(interval.start_at) or ""):
            raise BadRequestData(f"{name}: endAt is before startAt")


def _check_exclusive(reg: Registration) -> None:
    for info in reg.information:
        if not info.entities or info.attrs is None:
            raise BadRequestData("an exclusive registration names, in every information item, "
                                 "the entities (by id) and their propertyNames or "
                                 "relationshipNames")
        for entity in info.entities:
            if entity.id is None or entity.id_pattern is not None:
                raise BadRequestData("an exclusive registration names entities by id: an "
                                     "idPattern or a type alone is not allowed")


def _members(body: dict[str, Any], tm: TermMap, now: str, *, patch: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for member, (name, parse) in _MEMBERS.items():
        if member not in body:
            continue
        value = body[member]
        if value is None:
            if patch:
                fields[name] = None
            continue
        try:
            fields[name] = parse(value, tm, now)
        except BadRequestData as err:
            raise BadRequestData(f"{member}: {err.detail}") from None
    return fields


def _properties(body: dict[str, Any], tm: TermMap, current: dict[str, Any]
                ) -> dict[str, Any]:
    """Extra registration properties: IRI -> value as given (None deletes)."""
    out = dict(current)
    for name, value in body.items():
        if name in _MEMBERS or name in READ_ONLY_MEMBERS:
            continue
        iri = tm.expand(check_name(name, "registration property name"))
        if value is None:
            out.pop(iri, None)
        else:
            out[iri] = value
    return out


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str, most: int = MAX_ITEMS) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > most:
        raise BadRequestData(f"{what} must be an array of 1 to {most} items")
    return value


# --- one member each: (value, term map, now) -> the field value ---------------------------


def _text(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequestData(f"expected a string of at most {MAX_TEXT} characters, "
                             f"got {value!r:.60}")
    return value


def _information(value: Any, tm: TermMap, now: str) -> list[RegistrationInfo]:
    items = [_info(item, tm) for item in _list(value, "information")]
    if sum(len(i.entities or ()) for i in items) > MAX_ITEMS:
        raise BadRequestData(f"a registration names at most {MAX_ITEMS} entities")
    return items


def _info(item: Any, tm: TermMap) -> RegistrationInfo:
    item = _object(item, "each information item")
    info = RegistrationInfo()
    if item.get("entities") is not None:
        info.entities = [_entity(e, tm) for e in _list(item["entities"], "entities")]
    for member, attr in (("propertyNames", "property_names"),
                         ("relationshipNames", "relationship_names")):
        if item.get(member) is not None:
            names = [tm.expand(check_name(n)) for n in _list(item[member], member)]
            setattr(info, attr, list(dict.fromkeys(names)))
    if info.entities is None and info.attrs is None:
        raise BadRequestData("each information item needs entities, propertyNames or "
                             "relationshipNames")
    both = set(info.property_names or ()) & set(info.relationship_names or ())
    if both:
        raise BadRequestData(f"{tm.compact(sorted(both)[0])} cannot be both a property and a "
                             "relationship")
    return info


def _entity(item: Any, tm: TermMap) -> EntityInfo:
    item = _object(item, "each entities item")
    given = item.get("type")
    names = [given] if isinstance(given, str) else given
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, str) for n in names) or len(names) > 64:
        raise BadRequestData("each entities item needs a type: an entity type name or an "
                             "array of them")
    entity = EntityInfo(list(dict.fromkeys(tm.expand(check_name(n, "entity type"))
                                           for n in names)))
    if item.get("id") is not None:
        entity.id = check_uri(item["id"], "entities id")
    pattern = item.get("idPattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise BadRequestData("entities idPattern must be a string")
        compile_regex(pattern)
        entity.id_pattern = pattern
    return entity


def _tenant(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or not _TENANT.fullmatch(value):
        raise BadRequestData(f"a tenant name is 1 to 64 letters, digits or _-.:, got "
                             f"{value!r:.60}")
    return value


def _interval(value: Any, tm: TermMap, now: str) -> TimeInterval:
    value = _object(value, "a time interval")
    if value.get("startAt") is None:
        raise BadRequestData("a time interval needs startAt")
    interval = TimeInterval(check_datetime(value["startAt"], "startAt"))
    if value.get("endAt") is not None:
        interval.end_at = check_datetime(value["endAt"], "endAt")
    return interval


def _geometry(value: Any, tm: TermMap, now: str) -> dict[str, Any]:
    return validate_geometry(value)


def _expires(value: Any, tm: TermMap, now: str) -> str:
    key = datetime_key(value) if isinstance(value, str) else None
    if key is None:
        raise BadRequestData(f"expected a DateTime, got {value!r:.60}")
    if key <= (datetime_key(now) or ""):
        raise BadRequestData(f"{value} is not in the future")
    return str(value)


def _endpoint(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or len(value) > 2048 or re.search(r"[\x00-\x20\x7f]", value):
        raise BadRequestData(f"expected an http(s) URL, got {value!r:.100}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as err:
        raise BadRequestData(f"{value!r:.100} is not a valid URL: {err}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadRequestData(f"expected an http(s) URL with a host, got {value!r:.100}")
    return value


def _pairs(value: Any, tm: TermMap, now: str) -> list[dict[str, str]]:
    pairs: list[dict[str, str]] = []
    for item in _list(value, "a KeyValuePair array", MAX_PAIRS):
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise BadRequestData("each item must be an object with key and value")
        key, text = item["key"], item["value"]
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise BadRequestData(f"key {key!r:.60} must be a token (letters, digits, -)")
        if not isinstance(text, str) or len(text) > MAX_TEXT or "\r" in text or "\n" in text:
            raise BadRequestData(f"the value of {key} must be one line of text")
        pairs.append({"key": key, "value": text})
    return pairs


def _scope(value: Any, tm: TermMap, now: str) -> list[str]:
    scopes = parse_scopes(value)
    if not scopes:
        raise BadRequestData("expected a scope or an array of scopes")
    return scopes


def _mode(value: Any, tm: TermMap, now: str) -> str:
    if value not in MODES:
        raise BadRequestData(f"mode must be one of {', '.join(MODES)}, got {value!r:.40}")
    return str(value)


def _operations(value: Any, tm: TermMap, now: str) -> list[str]:
    return check_operations(_list(value, "operations", 64))


def _duration(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _DURATION.fullmatch(value):
        raise BadRequestData(f"expected an ISO 8601 duration such as PT30S, got {value!r:.60}")
    return value


def _milliseconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0:
        raise BadRequestData(f"{what} must be a non-negative number of milliseconds")
    return value


def _management(value: Any, tm: TermMap, now: str) -> Management:
    value = _object(value, "management")
    out = Management()
    if value.get("localOnly") is not None:
        if not isinstance(value["localOnly"], bool):
            raise BadRequestData("localOnly must be true or false")
        out.local_only = value["localOnly"]
    if value.get("cacheDuration") is not None:
        out.cache_duration = _duration(value["cacheDuration"], tm, now)
    for member in ("timeout", "cooldown"):
        if value.get(member) is not None:
            setattr(out, member, _milliseconds(value[member], member))
    return out


_MEMBERS: dict[str, tuple[str, Parser]] = {
    "registrationName": ("name", _text),
    "description": ("description", _text),
    "information": ("information", _information),
    "tenant": ("tenant", _tenant),
    "observationInterval": ("observation_interval", _interval),
    "managementInterval": ("management_interval", _interval),
    "location": ("location", _geometry),
    "observationSpace": ("observation_space", _geometry),
    "operationSpace": ("operation_space", _geometry),
    "expiresAt": ("expires_at", _expires),
    "endpoint": ("endpoint", _endpoint),
    "contextSourceInfo": ("context_source_info", _pairs),
    "scope": ("scope", _scope),
    "mode": ("mode", _mode),
    "operations": ("operations", _operations),
    "refreshRate": ("refresh_rate", _duration),
    "management": ("management", _management),
}
