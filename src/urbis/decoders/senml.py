"""SenML (RFC 8428) in its JSON representation.

A pack is an array of records. Base fields (`bn`, `bt`, `bu`, `bv`, `bs`, `bver`) apply to their
record and to every later record until changed; a record is resolved by concatenating names,
adding times, values and sums. Resolved times under 2**28 are relative to now. Units are mapped
to UN/CEFACT common codes where known; the SenML unit is kept in `source_unit`. A record's sum
is reported as a measurement named `<name>_sum`.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from urbis.decoders.base import DecodeError, Measurement, utc_from_epoch
from urbis.decoders.json_measures import load

RELATIVE_LIMIT = 2**28
SUPPORTED_VERSION = 10
MAX_RECORDS = 10_000

SENML_TO_CEFACT: dict[str, str] = {
    # RFC 8428 clause 12.1 primary units
    "m": "MTR", "kg": "KGM", "g": "GRM", "s": "SEC", "A": "AMP", "K": "KEL", "cd": "CDL",
    "mol": "C34", "Hz": "HTZ", "rad": "C81", "sr": "D27", "N": "NEW", "Pa": "PAL", "J": "JOU",
    "W": "WTT", "C": "COU", "V": "VLT", "F": "FAR", "Ohm": "OHM", "S": "SIE", "Wb": "WEB",
    "T": "D33", "H": "81", "Cel": "CEL", "lm": "LUM", "lx": "LUX", "Bq": "BQL", "Gy": "D13",
    "Sv": "D14", "kat": "KAT", "m2": "MTK", "m3": "MTQ", "l": "LTR", "m/s": "MTS",
    "m/s2": "MSK", "m3/s": "MQS", "l/s": "G51", "W/m2": "D54", "cd/m2": "A24", "bit": "A99",
    "bit/s": "B10", "dB": "2N", "%": "P1", "%RH": "P1", "%EL": "P1", "S/m": "D10",
    # RFC 8798 secondary units
    "ms": "C26", "min": "MIN", "h": "HUR", "MHz": "MHZ", "kW": "KWT", "kVA": "KVA",
    "Ah": "AMH", "Wh": "WHR", "kWh": "KWH", "mA": "4K", "mV": "2Z", "km": "KMT",
    "km/h": "KMH", "mm": "MMT", "hPa": "A97", "ppm": "59", "mW": "C31",
}  # fmt: skip

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9][-:./_A-Za-z0-9]*", re.ASCII)
_TEXT_FIELDS = ("bn", "bu", "n", "u", "vs", "vd")
_NUMBER_FIELDS = ("bt", "bv", "bs", "t", "v", "s", "ut")
_VALUE_FIELDS = ("v", "vs", "vb", "vd")
_BASE_FIELDS = ("bn", "bt", "bu", "bv", "bs", "bver")


def decode(
    payload: bytes | str, *, now: float | None = None, relative_names: bool = False
) -> list[Measurement]:
    """Decode a SenML JSON pack; `now` (epoch seconds) resolves relative times.

    With `relative_names` a measurement is named by its `n` alone (the base name usually names
    the device); the full resolved name is still validated.
    """
    data = load(payload)
    if not isinstance(data, list):
        raise DecodeError("syntax", "a SenML pack is a JSON array of records")
    if len(data) > MAX_RECORDS:
        raise DecodeError("too_large", f"more than {MAX_RECORDS} SenML records")
    clock = time.time() if now is None else now
    base: dict[str, Any] = {"bn": "", "bt": 0, "bu": None, "bv": 0, "bs": 0}
    out: list[Measurement] = []
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise DecodeError("syntax", f"SenML record {index} is not a JSON object")
        _check_fields(record, index)
        base.update({k: record[k] for k in _BASE_FIELDS if k in record and k != "bver"})
        out.extend(_resolve(record, base, index, clock, relative_names))
    return out


def _check_fields(record: dict[str, Any], index: int) -> None:
    for key, value in record.items():
        if key.endswith("_"):
            raise DecodeError("unsupported", f"record {index}: must-understand field {key!r}")
        if key in _TEXT_FIELDS and not isinstance(value, str):
            raise DecodeError("invalid_value", f"record {index}: {key} must be text")
        if key in _NUMBER_FIELDS and not _is_number(value):
            raise DecodeError("invalid_value", f"record {index}: {key} must be a number")
    if "vb" in record and not isinstance(record["vb"], bool):
        raise DecodeError("invalid_value", f"record {index}: vb must be a boolean")
    if "bver" in record:
        version = record["bver"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise DecodeError("invalid_value", f"record {index}: bver must be a positive integer")
        if version > SUPPORTED_VERSION:
            raise DecodeError("unsupported", f"SenML version {version} > {SUPPORTED_VERSION}")
    if sum(k in record for k in _VALUE_FIELDS) > 1:
        raise DecodeError("invalid_value", f"record {index} has more than one value field")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _resolve(
    record: dict[str, Any], base: dict[str, Any], index: int, clock: float, relative: bool
) -> list[Measurement]:
    has_value = any(k in record for k in _VALUE_FIELDS)
    if not has_value and "s" not in record:
        if "n" in record or not any(k in record for k in _BASE_FIELDS):
            raise DecodeError("invalid_value", f"SenML record {index} has no value or sum")
        return []  # a record of base fields only
    name = base["bn"] + record.get("n", "")
    if not _NAME.fullmatch(name):
        raise DecodeError("invalid_value", f"record {index}: invalid SenML name {name[:60]!r}")
    label = record.get("n", "") if relative and record.get("n") else name
    observed_at = _time(base["bt"], record, clock)
    source_unit = record.get("u", base["bu"])
    unit = SENML_TO_CEFACT.get(source_unit) if source_unit else None
    common = {"unit": unit, "observed_at": observed_at, "source_unit": source_unit}
    out = []
    if has_value:
        out.append(Measurement(label, _value(record, base, index), group=index, **common))
    if "s" in record:
        total = _finite(base["bs"] + record["s"], index)
        out.append(Measurement(f"{label}_sum", total, group=index, **common))
    return out


def _time(base_time: float, record: dict[str, Any], clock: float) -> str | None:
    if "t" not in record and base_time == 0:
        return None  # no time at all: "roughly now", the receiver stamps it
    moment = base_time + record.get("t", 0)
    if moment < RELATIVE_LIMIT:
        moment += clock
    return utc_from_epoch(moment)


def _value(record: dict[str, Any], base: dict[str, Any], index: int) -> Any:
    if "v" in record:
        return _finite(base["bv"] + record["v"], index)
    if "vd" in record:
        text = record["vd"]
        if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
            raise DecodeError("encoding", f"record {index}: vd is not base64url")
        return text
    return record["vs"] if "vs" in record else record["vb"]


def _finite(value: float, index: int) -> float:
    if not math.isfinite(value):
        raise DecodeError("invalid_value", f"record {index}: value out of range")
    return value
