"""JavaScript-like value semantics and the whitelisted transforms of the expression language.

The FIWARE IoT agents evaluate JEXL, whose values behave as JavaScript's; this module gives the
same answers for the common cases (truthiness, `+` on text, loose `==`, numeric coercion of
numeric text) and refuses what JSON cannot hold (NaN, infinities) with ExpressionError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from urbis.context.expression_ast import MAX_STRING, ExpressionError

SAFE_INT = 2**53


def number(value: Any) -> int | float:
    """A finite JSON number; integers beyond 2**53 become floats."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -SAFE_INT <= value <= SAFE_INT:
            return value
        try:
            value = float(value)
        except OverflowError:
            raise ExpressionError("number out of range") from None
    if not isinstance(value, float) or not math.isfinite(value):
        raise ExpressionError("number out of range")
    return value


def to_number(value: Any) -> int | float | None:
    """JavaScript `Number(value)`, or None where that would be NaN."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        try:
            return int(text) if len(text) <= 20 and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return None
    return None


def need_number(value: Any, op: str) -> int | float:
    """`value` as a number for an arithmetic operator, else ExpressionError."""
    result = to_number(value)
    if result is None:
        raise ExpressionError(f"{op} needs numbers, got {type_name(value)}")
    return result


def truthy(value: Any) -> bool:
    """JavaScript truthiness."""
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, list | dict):
        return True
    return bool(value)


def to_text(value: Any) -> str:
    """JavaScript `String(value)` (JSON for objects)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else to_text(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def bounded(value: Any) -> Any:
    """Refuse strings and arrays longer than MAX_STRING."""
    if isinstance(value, str | list) and len(value) > MAX_STRING:
        raise ExpressionError(f"a result is longer than {MAX_STRING}")
    return value


def type_name(value: Any) -> str:
    """JavaScript `typeof`."""
    if value is None:
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def loose_equal(a: Any, b: Any) -> bool:
    """JavaScript `==` for JSON values (arrays and objects compare by content)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return bool(a == b)
    x, y = to_number(a), to_number(b)
    return x is not None and y is not None and x == y


def _to_fixed(value: Any, digits: Any = 0) -> str:
    places = int(need_number(digits, "toFixed"))
    if not 0 <= places <= 20:
        raise ExpressionError("toFixed digits must be between 0 and 20")
    return f"{need_number(value, 'toFixed'):.{places}f}"


def _round(value: Any, digits: Any = 0) -> int | float:
    x, places = need_number(value, "round"), int(need_number(digits, "round"))
    if not 0 <= places <= 20:
        raise ExpressionError("round digits must be between 0 and 20")
    if places == 0:
        return math.floor(x + 0.5)
    scale = 10**places
    return math.floor(x * scale + 0.5) / scale


def _substr(value: Any, start: Any = 0, length: Any = None) -> str:
    text = to_text(value)
    begin = int(need_number(start, "substr"))
    begin = max(len(text) + begin, 0) if begin < 0 else begin
    if length is None:
        return text[begin:]
    return text[begin : begin + max(int(need_number(length, "substr")), 0)]


def _slice(value: Any, start: Any = 0, end: Any = None) -> Any:
    seq = value if isinstance(value, list) else to_text(value)
    stop = None if end is None else int(need_number(end, "slice"))
    return seq[int(need_number(start, "slice")) : stop]


def _split(value: Any, sep: Any = None) -> list[str]:
    text = to_text(value)
    if sep is None:
        return [text]
    return list(text) if to_text(sep) == "" else text.split(to_text(sep))


def _index_of(value: Any, item: Any) -> int:
    if isinstance(value, list):
        return next((i for i, v in enumerate(value) if v == item), -1)
    return to_text(value).find(to_text(item))


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | dict) else None


def _parse_int(value: Any, base: Any = 10) -> int | None:
    text, radix = to_text(value).strip(), int(need_number(base, "parseint"))
    try:
        return int(text, radix) if len(text) <= 64 else None
    except ValueError:
        return None


def _parse_float(value: Any) -> float | None:
    text = to_text(value).strip()
    try:
        result = float(text)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def _join(value: Any, sep: Any = ",") -> str:
    if not isinstance(value, list):
        return to_text(value)
    return to_text(sep).join("" if v is None else to_text(v) for v in value)


def _json_parse(value: Any) -> Any:
    try:
        return orjson.loads(to_text(value))
    except orjson.JSONDecodeError:
        raise ExpressionError("jsonparse: not JSON") from None


def _add_reduce(value: Any) -> int | float:
    if not isinstance(value, list):
        raise ExpressionError("addreduce needs an array")
    return sum((need_number(v, "addreduce") for v in value), 0)


def _to_iso(value: Any) -> str:
    millis = _get_time(value) if isinstance(value, str) else need_number(value, "toisodate")
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    except (OverflowError, ValueError):
        raise ExpressionError("date out of range") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _get_time(value: Any) -> int:
    try:
        moment = datetime.fromisoformat(to_text(value).replace("Z", "+00:00"))
    except ValueError:
        raise ExpressionError("gettime: not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _mapper(value: Any, values: Any, choices: Any) -> Any:
    if not isinstance(values, list) or not isinstance(choices, list):
        raise ExpressionError("mapper needs two arrays")
    index = next((i for i, v in enumerate(values) if loose_equal(v, value)), -1)
    return choices[index] if 0 <= index < len(choices) else None


def _replace(value: Any, old: Any, new: Any) -> str:
    return to_text(value).replace(to_text(old), to_text(new), 1)


def _num1(fn: Callable[[float], Any], name: str) -> Callable[[Any], Any]:
    return lambda value: fn(need_number(value, name))


TRANSFORMS: dict[str, Callable[..., Any]] = {
    "toFixed": _to_fixed,
    "round": _round,
    "floor": _num1(math.floor, "floor"),
    "ceil": _num1(math.ceil, "ceil"),
    "abs": _num1(abs, "abs"),
    "uppercase": lambda v: to_text(v).upper(),
    "lowercase": lambda v: to_text(v).lower(),
    "trim": lambda v: to_text(v).strip(),
    "length": _length,
    "substr": _substr,
    "slice": _slice,
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "replacestr": _replace,
    "parseint": _parse_int,
    "parsefloat": _parse_float,
    "tostring": to_text,
    "typeof": type_name,
    "isarray": lambda v: isinstance(v, list),
    "isnan": lambda v: to_number(v) is None,
    "jsonparse": _json_parse,
    "jsonstringify": lambda v: orjson.dumps(v).decode(),
    "addreduce": _add_reduce,
    "toisodate": _to_iso,
    "gettime": _get_time,
    "mapper": _mapper,
}
"""Whitelisted transforms (names as the FIWARE IoT agents spell them; aliases below)."""

ALIASES = {
    "touppercase": "uppercase",
    "toUpperCase": "uppercase",
    "tolowercase": "lowercase",
    "toLowerCase": "lowercase",
    "lengtharray": "length",
    "joinarray": "join",
    "indexof": "indexOf",
    "tofixed": "toFixed",
    "toisostring": "toisodate",
}
