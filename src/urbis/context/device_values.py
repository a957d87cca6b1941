"""Device values onto NGSI-LD: the provisioned attribute `type` decides the kind and the value.

FIWARE provisioning names attribute types loosely (`Number`, `Float`, `Integer`, `Boolean`,
`Text`, `DateTime`, `geo:json`, `geo:point`, `Point`, `Relationship`, ...). Each maps onto an
NGSI-LD attribute kind (Property, GeoProperty, Relationship) and a coercion of the device's
value: UltraLight sends text, so `"25.3"` of a `Number` becomes 25.3. A value that does not fit
its type raises BadRequestData (the agent's `invalid_value`). Types it does not know keep the
value as it came, in a Property.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from urbis.context.errors import BadRequestData
from urbis.context.geo import validate_geometry
from urbis.context.model import GEO_PROPERTY, PROPERTY, RELATIONSHIP
from urbis.context.normalize import NULL_URI, check_datetime, check_uri

COMMAND = "command"
_INT = re.compile(r"[+-]?\d{1,30}")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})
_GEOMETRIES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                         "MultiPolygon", "GeometryCollection"})
MAX_TEXT = 65_536
MAX_INT = 2**63 - 1  # larger integers become floats (stores keep 64-bit integers)
Coerce = Callable[[Any], Any]


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise BadRequestData(f"{value!r} is not a number")
    if isinstance(value, int):
        return value if -MAX_INT <= value <= MAX_INT else float(value)  # as JSON readers do
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequestData("a number must be finite")
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return _number(int(text))
        if _FLOAT.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
    raise BadRequestData(f"{_show(value)} is not a number")


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise BadRequestData(f"{_show(value)} is not an integer")
        return int(number)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise BadRequestData(f"{_show(value)} is not a boolean")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise BadRequestData(f"{_show(value)} is not text")


def _datetime(value: Any) -> dict[str, str]:
    text = value.strip() if isinstance(value, str) else value
    return {"@type": "DateTime", "@value": check_datetime(text, "a DateTime value")}


def _geometry(value: Any) -> dict[str, Any]:
    """GeoJSON as given; `[lon, lat]` numbers; or the NGSI-v2 geo:point text `"lat, lon"`."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            raise BadRequestData(f"{_show(value)} is not a 'latitude, longitude' point")
        lat, lon = (_number(p) for p in parts)
        value = {"type": "Point", "coordinates": [lon, lat]}
    elif isinstance(value, list):
        value = {"type": "Point", "coordinates": value}
    return validate_geometry(value)


def _relationship(value: Any) -> str:
    return check_uri(value.strip() if isinstance(value, str) else value,
                     "the object of a Relationship")


def as_is(value: Any) -> Any:
    """No coercion: the value as the device sent it."""
    return value


_NUMBER_TYPES = ("Number", "Float", "Double", "Decimal", "Real")
_INTEGER_TYPES = ("Integer", "Int", "Long")
_BOOLEAN_TYPES = ("Boolean", "Bool")
_TEXT_TYPES = ("Text", "String")
_DATETIME_TYPES = ("DateTime", "ISO8601", "Date-Time")
_GEO_TYPES = ("GeoProperty", "geo:json", "geo:point", "geo:line", "geo:polygon",
              "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")


def _kinds() -> dict[str, tuple[str, Coerce]]:
    table: dict[str, tuple[str, Coerce]] = {}
    for names, kind, coerce in ((_NUMBER_TYPES, PROPERTY, _number),
                                (_INTEGER_TYPES, PROPERTY, _integer),
                                (_BOOLEAN_TYPES, PROPERTY, _boolean),
                                (_TEXT_TYPES, PROPERTY, _text),
                                (_DATETIME_TYPES, PROPERTY, _datetime),
                                (_GEO_TYPES, GEO_PROPERTY, _geometry),
                                (("Relationship",), RELATIONSHIP, _relationship)):
        for name in names:
            table[name.lower()] = (kind, coerce)
    return table


_KINDS = _kinds()


def kind_of(type_name: str | None) -> tuple[str, Coerce]:
    """(NGSI-LD attribute kind, value coercion) of a provisioned attribute type."""
    if not type_name:
        return PROPERTY, as_is
    return _KINDS.get(type_name.lower(), (PROPERTY, as_is))


def infer(value: Any) -> str:
    """The kind of a measure nothing maps: GeoProperty for a GeoJSON geometry, else Property."""
    if isinstance(value, dict) and value.get("type") in _GEOMETRIES and (
            "coordinates" in value or "geometries" in value):
        return GEO_PROPERTY
    return PROPERTY


def checked(kind: str, coerce: Coerce, value: Any) -> Any:
    """The value coerced for its kind; BadRequestData if it does not fit."""
    out = coerce(value)
    if kind == GEO_PROPERTY and coerce is not _geometry:
        out = validate_geometry(out)
    if out is None or out == NULL_URI:
        raise BadRequestData("a null value")
    if isinstance(out, str) and len(out) > MAX_TEXT:
        raise BadRequestData(f"text longer than {MAX_TEXT} characters")
    return out


def value_key(kind: str) -> str:
    """The member holding the value of an attribute of this kind."""
    return "object" if kind == RELATIONSHIP else "value"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
