"""Typed conversion of source values (CSV text or JSON values) for connector mappings."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

VALUE_TYPES = ("text", "number", "integer", "boolean", "datetime", "date", "json")

_INT = re.compile(r"[+-]?\d{1,30}")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_GTFS_DATE = re.compile(r"(\d{4})(\d\d)(\d\d)")


class ValueConversionError(ValueError):
    """A source value that does not convert to the declared type."""


def is_missing(value: Any) -> bool:
    """Whether a source value counts as absent (None or blank text)."""
    return value is None or (isinstance(value, str) and not value.strip())


def convert(value: Any, kind: str, zone: tzinfo = UTC) -> Any:
    """Convert a present source value to `kind` (one of VALUE_TYPES)."""
    match kind:
        case "text":
            if isinstance(value, dict | list):
                raise ValueConversionError("a structured value where text is expected")
            return value if isinstance(value, str) else _text(value)
        case "number":
            return _number(value)
        case "integer":
            return _integer(value)
        case "boolean":
            return _boolean(value)
        case "datetime":
            return {"@type": "DateTime", "@value": to_utc(value, zone)}
        case "date":
            return {"@type": "Date", "@value": to_date(value)}
        case "json":
            return value
    raise ValueConversionError(f"unknown value type {kind!r}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueConversionError("a boolean where a number is expected")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return int(text)
        try:
            result = float(text)
        except ValueError:
            raise ValueConversionError(f"{text[:30]!r} is not a number") from None
    else:
        raise ValueConversionError("not a number")
    if not math.isfinite(result):
        raise ValueConversionError("a number that is not finite")
    return result


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueConversionError(f"{number} is not an integer")
        return int(number)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueConversionError(f"{text[:30]!r} is not a boolean")


def to_utc(value: Any, zone: tzinfo = UTC) -> str:
    """A date-time (ISO 8601 text or epoch seconds) as UTC `...Z` text; naive ones in `zone`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise ValueConversionError("epoch time out of range") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueConversionError(f"{value[:40]!r} is not an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
    else:
        raise ValueConversionError("not a date-time")
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    if moment.microsecond % 1000:
        spec = "microseconds"
    return moment.isoformat(timespec=spec) + "Z"


def to_date(value: Any) -> str:
    """A date (`YYYY-MM-DD` or GTFS `YYYYMMDD`) as `YYYY-MM-DD` text."""
    text = str(value).strip()
    m = _GTFS_DATE.fullmatch(text)
    if m:
        text = "-".join(m.groups())
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueConversionError(f"{text[:20]!r} is not a date") from None
