"""Validate subscription payloads (create, and update fragments) into Subscriptions.

Every member is checked on its own (shape, value space, q / geoQ / scopeQ syntax) and then the
whole subscription against the rules that tie members together (clause 5.2.12). Any problem is
a BadRequestData naming the member; nothing is half-applied. As in JSON-LD, members this
broker does not know are ignored, and so are the read-only ones a client may send back
(status, timesSent, ... : Table 5.2.12-2); a null member is absent at creation and deletes
the member in an update.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.geo import parse_geo_q_object
from urbis.context.jsonld import TermMap, is_absolute_iri
from urbis.context.normalize import check_name, check_uri
from urbis.context.query.q import compile_regex, datetime_key, parse_q
from urbis.context.query.scope import parse_scope_q
from urbis.context.query.types import parse_type_expr
from urbis.context.render import FORMATS, KEY_VALUES
from urbis.context.subscription import (
    SUBSCRIPTION,
    TRIGGERS,
    EntitySelector,
    NotificationParams,
    Subscription,
)
from urbis.context.subscription_endpoint import parse_endpoint

_LANG = re.compile(r"[A-Za-z0-9*\-]+(?:\s*;\s*q=[0-9.]+)?(?:\s*,\s*[A-Za-z0-9*\-]+"
                   r"(?:\s*;\s*q=[0-9.]+)?)*")
MAX_TEXT = 4096
Parser = Callable[[Any, TermMap, str], Any]  # (value, term map, now) -> field value


def parse_subscription(body: Any, tm: TermMap, now: str, new_id: str) -> Subscription:
    """A new Subscription from a create payload; `new_id` is used when the body has no id."""
    body = _object(body, "the subscription")
    _check_type(body.get("type"))
    sub_id = new_id if body.get("id") is None else check_uri(body["id"], "subscription id")
    notification = body.get("notification")
    if notification is None:
        raise BadRequestData("a subscription needs a notification member")
    fields = _members(body, tm, now, _MEMBERS, patch=False)
    fields["notification"] = parse_notification(notification, tm)
    sub = Subscription(id=sub_id, created_at=now, modified_at=now, **fields)
    validate(sub)
    return sub


def patch_subscription(sub: Subscription, body: Any, tm: TermMap, now: str) -> Subscription:
    """The subscription with an update fragment applied (clause 5.8.2); null deletes."""
    body = _object(body, "the subscription fragment")
    if "id" in body and body["id"] != sub.id:
        raise BadRequestData(f"the id of a subscription cannot change ({body['id']!r:.100})")
    if "type" in body:
        _check_type(body["type"])
    fields = _members(body, tm, now, _MEMBERS, patch=True)
    if "notification" in body:
        fields["notification"] = merge_notification(sub.notification, body["notification"], tm)
    if "entities" in fields and fields["entities"] is None:
        fields["entities"] = []
    updated = replace(sub, modified_at=now, **fields)
    validate(updated)
    return updated


def parse_notification(value: Any, tm: TermMap) -> NotificationParams:
    """NotificationParams of a create payload (endpoint mandatory)."""
    value = _object(value, "notification")
    if value.get("endpoint") is None:
        raise BadRequestData("notification needs an endpoint")
    fields = _members(value, tm, "", _NOTIFICATION, patch=False)
    return NotificationParams(**fields)


def merge_notification(current: NotificationParams, value: Any, tm: TermMap
                       ) -> NotificationParams:
    """NotificationParams with the members of an update fragment replaced (null deletes)."""
    value = _object(value, "notification")
    if "endpoint" in value and value["endpoint"] is None:
        raise BadRequestData("notification.endpoint is mandatory and cannot be removed")
    return replace(current, **_members(value, tm, "", _NOTIFICATION, patch=True))


def validate(sub: Subscription) -> None:
    """The rules of clause 5.2.12 that tie members together."""
    if not sub.entities and not sub.watched:
        raise BadRequestData("a subscription needs entities or watchedAttributes (or both)")
    if sub.time_interval is not None and sub.watched:
        raise BadRequestData("timeInterval and watchedAttributes cannot be used together")
    if sub.time_interval is not None and sub.throttling is not None:
        raise BadRequestData("timeInterval and throttling cannot be used together")
    note = sub.notification
    if note.show_changes and note.format == KEY_VALUES:
        raise BadRequestData("showChanges cannot be true with the keyValues format")
    if note.attributes and (note.pick or note.omit):
        raise BadRequestData("notification.attributes cannot be used with pick or omit")
    both = set(note.pick or ()) & set(note.omit or ())
    if both:
        raise BadRequestData(f"{sorted(both)[0]} cannot be both picked and omitted")


def _members(body: dict[str, Any], tm: TermMap, now: str,
             table: dict[str, tuple[str, Parser]], *, patch: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for member, (name, parse) in table.items():
        if member not in body:
            continue
        value = body[member]
        if value is None:
            if patch:
                fields[name] = None
            continue
        fields[name] = parse(value, tm, now)
    return fields


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData(f"{what} must be a JSON object")
    return value


def _check_type(value: Any) -> None:
    if value != SUBSCRIPTION:
        raise BadRequestData(f"the type of a subscription must be {SUBSCRIPTION!r}, "
                             f"not {value!r:.60}")


# --- one member each: (value, term map, now) -> the field value ---------------------------


def _text(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequestData(f"expected a string of at most {MAX_TEXT} characters, "
                             f"got {value!r:.60}")
    return value


def _bool(value: Any, tm: TermMap, now: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestData(f"expected true or false, got {value!r:.60}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequestData(f"{what} must be a number, got {value!r:.60}")
    return value


def _seconds(value: Any, tm: TermMap, now: str) -> float:
    if _number(value, "timeInterval") <= 0:
        raise BadRequestData(f"timeInterval must be a positive number of seconds, got {value}")
    return value


def _throttling(value: Any, tm: TermMap, now: str) -> float:
    if _number(value, "throttling") < 0:
        raise BadRequestData(f"throttling must not be negative, got {value}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"{what} must be a non-empty array")
    return value


def _names(value: Any, tm: TermMap, now: str) -> list[str]:
    names = [tm.expand(check_name(n)) for n in _list(value, "a list of attribute names")]
    return list(dict.fromkeys(names))


def _projection(value: Any, tm: TermMap, now: str) -> list[str]:
    names = [n if n in ("id", "type") else tm.expand(check_name(n))
             for n in _list(value, "pick and omit")]
    return list(dict.fromkeys(names))


def _triggers(value: Any, tm: TermMap, now: str) -> list[str]:
    for item in _list(value, "notificationTrigger"):
        if item not in TRIGGERS:
            raise BadRequestData(f"unknown notificationTrigger {item!r:.60}; valid ones are "
                                 f"{', '.join(TRIGGERS)}")
    return list(dict.fromkeys(value))


def _entities(value: Any, tm: TermMap, now: str) -> list[EntitySelector]:
    return [_selector(item, tm) for item in _list(value, "entities")]


def _selector(item: Any, tm: TermMap) -> EntitySelector:
    item = _object(item, "each entities item")
    type_ = item.get("type")
    if not isinstance(type_, str):
        raise BadRequestData("each entities item needs a type (a type name or selection)")
    selector = EntitySelector(parse_type_expr(type_, tm.expand))
    if item.get("id") is not None:
        selector.id = check_uri(item["id"], "entities id")
    pattern = item.get("idPattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise BadRequestData("entities idPattern must be a string")
        compile_regex(pattern)
        selector.id_pattern = pattern
    return selector


def _q(value: Any, tm: TermMap, now: str) -> Any:
    if not isinstance(value, str):
        raise BadRequestData("q must be a string")
    return parse_q(value, tm.expand)


def _csf(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str):
        raise BadRequestData("csf must be a string")
    parse_q(value)
    return value


def _scope_q(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str):
        raise BadRequestData("scopeQ must be a string")
    parse_scope_q(value)
    return value


def _geo_q(value: Any, tm: TermMap, now: str) -> dict[str, Any]:
    query = parse_geo_q_object(value, tm.expand)
    stored = {"georel": value["georel"].strip(), "geometry": query.geometry,
              "coordinates": query.geojson["coordinates"]}
    if value.get("geoproperty") not in (None, ""):
        stored["geoproperty"] = query.geoproperty
    return stored


def _expires(value: Any, tm: TermMap, now: str) -> str:
    key = datetime_key(value) if isinstance(value, str) else None
    if key is None:
        raise BadRequestData(f"expiresAt must be a DateTime, got {value!r:.60}")
    if key <= (datetime_key(now) or ""):
        raise BadRequestData(f"expiresAt {value} is not in the future")
    return value


def _lang(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or len(value) > 256 or not _LANG.fullmatch(value):
        raise BadRequestData(f"lang must be language tags like 'en' or 'fr,en;q=0.5', "
                             f"got {value!r:.60}")
    return value


def _dataset_ids(value: Any, tm: TermMap, now: str) -> list[str]:
    items = [value] if isinstance(value, str) else _list(value, "datasetId")
    return list(dict.fromkeys(check_uri(i, "datasetId") for i in items))


def _context_url(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or not is_absolute_iri(value):
        raise BadRequestData(f"jsonldContext must be an absolute URL, got {value!r:.100}")
    return value


def _format(value: Any, tm: TermMap, now: str) -> str:
    if not isinstance(value, str) or value not in FORMATS:
        raise BadRequestData(f"notification format must be one of {', '.join(sorted(FORMATS))}"
                             f", got {value!r:.40}")
    return str(value)


_MEMBERS: dict[str, tuple[str, Parser]] = {
    "subscriptionName": ("name", _text),
    "description": ("description", _text),
    "entities": ("entities", _entities),
    "watchedAttributes": ("watched", _names),
    "notificationTrigger": ("triggers", _triggers),
    "timeInterval": ("time_interval", _seconds),
    "q": ("q", _q),
    "geoQ": ("geo_q", _geo_q),
    "scopeQ": ("scope_q", _scope_q),
    "csf": ("csf", _csf),
    "isActive": ("is_active", _bool),
    "expiresAt": ("expires_at", _expires),
    "throttling": ("throttling", _throttling),
    "lang": ("lang", _lang),
    "datasetId": ("dataset_id", _dataset_ids),
    "jsonldContext": ("jsonld_context", _context_url),
}
_NOTIFICATION: dict[str, tuple[str, Parser]] = {
    "attributes": ("attributes", _names),
    "pick": ("pick", _projection),
    "omit": ("omit", _projection),
    "format": ("format", _format),
    "showChanges": ("show_changes", _bool),
    "sysAttrs": ("sys_attrs", _bool),
    "endpoint": ("endpoint", lambda value, tm, now: parse_endpoint(value)),
}
