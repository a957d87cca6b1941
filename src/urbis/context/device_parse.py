"""Validate FIWARE IoT Agent provisioning bodies into service groups and devices.

Fields urbis uses are checked (names, types, expressions parse, static values fit their type);
fields it does not use (`cbroker`, `trust`, `ngsiVersion`, `internal_attributes`...) are kept as
given so that FIWARE tools read back what they wrote. The headers, not the body, say the
service and service path. Every failure is WRONG_SYNTAX (400), naming the field.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from urbis.context.device_values import COMMAND, checked, kind_of
from urbis.context.devices import (
    DEFAULT_ENTITY_TYPE,
    DEFAULT_RESOURCE,
    Device,
    ServiceGroup,
    fiware,
    wrong_syntax,
)
from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.expressions import compile_expression
from urbis.context.model import GEO_PROPERTY
from urbis.context.normalize import check_name, check_uri

MAX_ITEMS = 1000  # groups or devices in one request
MAX_ATTRIBUTES = 500  # entries of one attribute list
MAX_BODY = 64 * 1024  # bytes of one stored group or device
MAX_INTERVAL = 366 * 86400.0
# apikeys and device ids travel in MQTT topics and URL queries: no separators, no blanks.
_KEY = re.compile(r"[^\s/#+?&=\x00-\x1f\x7f]{1,256}")
_RESOURCE = re.compile(r"[^\s?#\x00-\x1f\x7f]{0,256}")
_PATH = re.compile(r"/|(/[A-Za-z0-9_\-]{1,50}){1,10}")
_SCOPE_KEYS = ("service", "subservice", "service_path", "_id", "__v")
_LISTS = ("attributes", "lazy", "commands", "static_attributes")
_RESERVED = frozenset({"id", "type", "@id", "@type", "@context"})
_GEO_NAMES = frozenset({"location", "observationSpace", "operationSpace"})


def check_service_path(value: str | None, *, wildcard: bool = False) -> str:
    """A fiware-servicepath (`/`, `/a/b`); `/*` (every path) only where `wildcard`."""
    path = "/" if value is None or value == "" else value.strip()
    if wildcard and path == "/*":
        return path
    if not _PATH.fullmatch(path):
        raise fiware_header(f"invalid fiware-servicepath {path!r:.80}")
    return path


def fiware_header(message: str) -> NgsiError:
    """400 BAD_REQUEST about a header."""
    return fiware(BadRequestData, "BAD_REQUEST", message)


def check_key(value: Any, what: str) -> str:
    """An apikey or device id: 1-256 characters without blanks, `/`, `#`, `+`, `?`, `&`, `=`."""
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise wrong_syntax(f"{what} must be 1-256 characters without blanks or / # + ? & =, "
                           f"got {value!r:.80}")
    return value


def items_of(body: Any, member: str) -> list[dict[str, Any]]:
    """The array `member` of a POST body (`{"services": [...]}`, `{"devices": [...]}`)."""
    if not isinstance(body, dict) or not isinstance(body.get(member), list):
        raise wrong_syntax(f"the body must be an object with a {member!r} array")
    items = body[member]
    if not items or len(items) > MAX_ITEMS:
        raise wrong_syntax(f"{member!r} must hold 1 to {MAX_ITEMS} entries")
    if not all(isinstance(i, dict) for i in items):
        raise wrong_syntax(f"every entry of {member!r} must be an object")
    return items


def parse_group(item: Any, tenant: str, service_path: str, now: str) -> ServiceGroup:
    """A service group from one entry of POST /iot/services."""
    body = _common(item, "service group")
    apikey = check_key(body.get("apikey"), "apikey")
    resource = body.setdefault("resource", DEFAULT_RESOURCE)
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        raise wrong_syntax(f"resource must be a path of up to 256 characters, got "
                           f"{resource!r:.80}")
    entity_type = _type_name(body.setdefault("entity_type", DEFAULT_ENTITY_TYPE))
    _flag(body, "autoprovision")
    _size(body)
    return ServiceGroup(tenant, service_path, apikey, resource, entity_type, body,
                        created_at=now)


def parse_device(item: Any, tenant: str, service_path: str, now: str,
                 group: ServiceGroup | None = None) -> Device:
    """A device from one entry of POST /iot/devices; `group` gives missing apikey and type."""
    body = _common(item, "device")
    device_id = check_key(body.get("device_id"), "device_id")
    apikey = body.get("apikey") or (group.apikey if group else "")
    if apikey:
        body["apikey"] = check_key(apikey, "apikey")
    entity_type = _type_name(body.get("entity_type") or (
        group.entity_type if group else DEFAULT_ENTITY_TYPE))
    body["entity_type"] = entity_type
    name = body.get("entity_name") or f"urn:ngsi-ld:{entity_type}:{device_id}"
    body["entity_name"] = _uri(name, "entity_name")
    for key in ("protocol", "transport", "endpoint", "timezone"):
        if key in body and not isinstance(body[key], str):
            raise wrong_syntax(f"{key} must be text")
    _size(body)
    return Device(tenant, service_path, device_id, apikey, body["entity_name"], entity_type,
                  body, created_at=now)


def patch_group(group: ServiceGroup, patch: Any) -> ServiceGroup:
    """PUT /iot/services: the group with the given fields replaced (apikey, resource kept)."""
    if not isinstance(patch, dict):
        raise wrong_syntax("the body must be a JSON object")
    for key in ("apikey", "resource"):
        if key in patch and patch[key] != getattr(group, key):
            raise wrong_syntax(f"{key} identifies the group and cannot change; delete the "
                               "group and create it again")
    merged = {**group.body, **{k: v for k, v in patch.items() if k not in _SCOPE_KEYS}}
    return parse_group(merged, group.tenant, group.service_path, group.created_at)


def patch_device(device: Device, patch: Any, group: ServiceGroup | None = None) -> Device:
    """PUT /iot/devices/{id}: the device with the given fields replaced (device_id kept)."""
    if not isinstance(patch, dict):
        raise wrong_syntax("the body must be a JSON object")
    if "device_id" in patch and patch["device_id"] != device.device_id:
        raise wrong_syntax("device_id cannot change; delete the device and create it again")
    merged = {**device.body, **{k: v for k, v in patch.items() if k not in _SCOPE_KEYS}}
    if "entity_type" in patch and "entity_name" not in patch and \
            device.entity_name == f"urn:ngsi-ld:{device.entity_type}:{device.device_id}":
        merged.pop("entity_name", None)  # the default name follows the type
    return parse_device(merged, device.tenant, device.service_path, device.created_at, group)


def group_json(group: ServiceGroup) -> dict[str, Any]:
    """A group as GET /iot/services shows it."""
    return {**group.body, "service": group.tenant, "subservice": group.service_path}


def device_json(device: Device) -> dict[str, Any]:
    """A device as GET /iot/devices shows it."""
    out = {**device.body, "service": device.tenant, "service_path": device.service_path}
    if device.last_seen:
        out["lastSeen"] = device.last_seen
    return out


# --- fields shared by groups and devices -------------------------------------------------------


def _common(item: Any, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise wrong_syntax(f"a {what} must be a JSON object")
    body = {k: v for k, v in item.items() if k not in _SCOPE_KEYS}
    for key in _LISTS:
        if key in body:
            body[key] = _attribute_list(body[key], key)
    _explicit(body)
    _flag(body, "timestamp")
    if "payload_decoder" in body and not isinstance(body["payload_decoder"], str):
        raise wrong_syntax("payload_decoder must be the name of a payload decoder")
    if "expectedInterval" in body:
        interval = body["expectedInterval"]
        if isinstance(interval, bool) or not isinstance(interval, int | float) or \
                not 0 < interval <= MAX_INTERVAL:
            raise wrong_syntax("expectedInterval must be a number of seconds, 0 < s <= 1 year")
    return body


def _attribute_list(value: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_ATTRIBUTES:
        raise wrong_syntax(f"{key} must be an array of at most {MAX_ATTRIBUTES} objects")
    return [_attribute(entry, key) for entry in value]


def _attribute(entry: Any, key: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise wrong_syntax(f"every entry of {key} must be an object")
    try:
        name = check_name(entry.get("name"), f"attribute name in {key}")
    except BadRequestData as err:
        raise wrong_syntax(err.detail) from None
    if name in _RESERVED:
        raise wrong_syntax(f"{name!r} cannot be an attribute name ({key})")
    if entry.get("type") is not None and not isinstance(entry["type"], str):
        raise wrong_syntax(f"type of {name} in {key} must be text")
    if "object_id" in entry and (not isinstance(entry["object_id"], str) or
                                 not entry["object_id"]):
        raise wrong_syntax(f"object_id of {name} in {key} must be non-empty text")
    if isinstance(entry.get("expression"), str):
        _expression(entry["expression"], f"expression of {name}")
    elif entry.get("expression") is not None:
        raise wrong_syntax(f"expression of {name} must be text")
    _metadata(entry, name)
    for member in ("entity_name", "datasetId"):
        if member in entry:
            _uri(entry[member], f"{member} of {name}")
    if "entity_type" in entry:
        _type_name(entry["entity_type"])
    if name in _GEO_NAMES and kind_of(entry.get("type"))[0] != GEO_PROPERTY and \
            entry.get("type") not in (None, "Property"):
        raise wrong_syntax(f"{name} is a GeoProperty: give it a geo type (geo:json, Point...)")
    if key == "static_attributes":
        _static_value(entry, name)
    if key == "commands" and not entry.get("type"):
        entry = {**entry, "type": COMMAND}
    return entry


def _metadata(entry: dict[str, Any], name: str) -> None:
    meta = entry.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise wrong_syntax(f"metadata of {name} must be an object")
    for key, member in meta.items():
        if key in _RESERVED or not isinstance(key, str):
            raise wrong_syntax(f"invalid metadata name {key!r} of {name}")
        try:
            check_name(key, "metadata name")
        except BadRequestData as err:
            raise wrong_syntax(err.detail) from None
        value = member.get("value") if isinstance(member, dict) else member
        if value is None:
            raise wrong_syntax(f"metadata {key} of {name} has no value")
        if key == "unitCode" and not (isinstance(value, str) and value):
            raise wrong_syntax(f"unitCode of {name} must be a UN/CEFACT code (text)")
        if key == "datasetId":
            _uri(value, f"datasetId of {name}")


def _static_value(entry: dict[str, Any], name: str) -> None:
    if entry.get("value") is None:
        raise wrong_syntax(f"static attribute {name} needs a value")
    kind, coerce = kind_of(entry.get("type"))
    if name in _GEO_NAMES:
        kind = GEO_PROPERTY
    try:
        checked(kind, coerce, entry["value"])
    except BadRequestData as err:
        raise wrong_syntax(f"static attribute {name}: {err.detail}") from None


def _explicit(body: dict[str, Any]) -> None:
    value = body.get("explicitAttrs")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _expression(value, "explicitAttrs")
    elif not isinstance(value, list) or not all(
            isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("object_id"), str))
            for v in value):
        raise wrong_syntax("explicitAttrs must be a boolean, an array of attribute names (or "
                           "{object_id} objects) or an expression")


def _expression(text: str, what: str) -> None:
    try:
        compile_expression(text)
    except BadRequestData as err:
        raise wrong_syntax(f"{what}: {err.detail}") from None


def _flag(body: dict[str, Any], key: str) -> None:
    if key in body and not isinstance(body[key], bool):
        raise wrong_syntax(f"{key} must be true or false")


def _type_name(value: Any) -> str:
    try:
        return check_name(value, "entity_type")
    except BadRequestData as err:
        raise wrong_syntax(err.detail) from None


def _uri(value: Any, what: str) -> str:
    try:
        check_uri(value, what)
    except BadRequestData as err:
        raise wrong_syntax(err.detail) from None
    if len(value) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise wrong_syntax(f"{what} must be a URI of at most 1024 printable characters")
    return str(value)


def _size(body: dict[str, Any]) -> None:
    try:
        size = len(orjson.dumps(body))
    except TypeError:  # only JSON reaches here, but a huge integer may not serialise
        raise wrong_syntax("the body holds a value JSON cannot carry") from None
    if size > MAX_BODY:
        raise wrong_syntax(f"a group or device is at most {MAX_BODY} bytes of JSON")
