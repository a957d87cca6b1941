"""Cayenne Low Power Payload (CayenneLPP), the myDevices binary format for LoRaWAN sensors.

A frame is a sequence of `channel (1 byte) | type (1 byte) | data (N bytes)`; types are IPSO
object ids minus 3200; multi-byte values are big-endian. A measurement is named
`<type name>_<channel>` (the names The Things Stack's CayenneLPP formatter uses) and carries the
channel. Accelerometer and gyrometer values are `{"x", "y", "z"}`; GPS is a GeoJSON Point
`[longitude, latitude, altitude]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from urbis.decoders.base import DecodeError, EncodeError, Measurement, as_bytes


@dataclass(frozen=True, slots=True)
class LppType:
    """One CayenneLPP data type: its code, name, size, scale per axis and UN/CEFACT unit."""

    code: int
    name: str
    size: int
    scale: int
    signed: bool
    unit: str | None = None


TYPES: dict[int, LppType] = {
    t.code: t
    for t in (
        LppType(0, "digital_in", 1, 1, False),
        LppType(1, "digital_out", 1, 1, False),
        LppType(2, "analog_in", 2, 100, True),
        LppType(3, "analog_out", 2, 100, True),
        LppType(101, "luminosity", 2, 1, False, "LUX"),
        LppType(102, "presence", 1, 1, False),
        LppType(103, "temperature", 2, 10, True, "CEL"),
        LppType(104, "relative_humidity", 1, 2, False, "P1"),
        LppType(113, "accelerometer", 6, 1000, True, "K40"),
        LppType(115, "barometric_pressure", 2, 10, False, "A97"),
        LppType(134, "gyrometer", 6, 100, True, "E96"),
        LppType(136, "gps", 9, 0, True),
    )
}
BY_NAME = {t.name: t for t in TYPES.values()}


def _int(data: bytes, signed: bool) -> int:
    return int.from_bytes(data, "big", signed=signed)


def _scaled(raw: int, scale: int) -> int | float:
    return raw if scale == 1 else raw / scale


def _read(kind: LppType, data: bytes) -> Any:
    if kind.name == "gps":
        lat, lon = _int(data[0:3], True) / 10_000, _int(data[3:6], True) / 10_000
        return {"type": "Point", "coordinates": [lon, lat, _int(data[6:9], True) / 100]}
    if kind.size == 6:
        axes = (_int(data[i : i + 2], True) for i in (0, 2, 4))
        return dict(zip("xyz", (_scaled(a, kind.scale) for a in axes), strict=True))
    return _scaled(_int(data, kind.signed), kind.scale)


def decode(payload: bytes | str) -> list[Measurement]:
    """Decode a CayenneLPP frame (bytes; text is taken as hexadecimal)."""
    data = _frame(payload)
    out: list[Measurement] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise DecodeError("truncated", f"frame ends inside the header at byte {pos}")
        channel, code = data[pos], data[pos + 1]
        kind = TYPES.get(code)
        if kind is None:
            raise DecodeError("unknown_type", f"unknown CayenneLPP type {code} at byte {pos + 1}")
        body = data[pos + 2 : pos + 2 + kind.size]
        if len(body) < kind.size:
            raise DecodeError("truncated", f"{kind.name} on channel {channel} is cut short")
        value = _read(kind, body)
        out.append(Measurement(f"{kind.name}_{channel}", value, unit=kind.unit, channel=channel))
        pos += 2 + kind.size
    if not out:
        raise DecodeError("syntax", "empty CayenneLPP frame")
    return out


def _frame(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        try:
            return as_bytes(bytes.fromhex(payload))
        except ValueError:
            raise DecodeError("encoding", "text CayenneLPP payload is not hexadecimal") from None
    return as_bytes(payload)


def _put(value: float, scale: int, size: int, signed: bool) -> bytes:
    try:
        raw = round(value * scale) if scale != 1 else int(value)
        return raw.to_bytes(size, "big", signed=signed)
    except (OverflowError, ValueError, TypeError):
        raise EncodeError(f"value {value!r} does not fit in {size} bytes") from None


def _write(kind: LppType, value: Any) -> bytes:
    if kind.name == "gps":
        lon, lat, *alt = value["coordinates"] if isinstance(value, dict) else value
        return b"".join(
            _put(v, s, 3, True)
            for v, s in ((lat, 10_000), (lon, 10_000), (alt[0] if alt else 0, 100))
        )
    if kind.size == 6:
        axes = [value[a] for a in "xyz"] if isinstance(value, dict) else list(value)
        return b"".join(_put(v, kind.scale, 2, True) for v in axes)
    return _put(value, kind.scale, kind.size, kind.signed)


def encode(items: Iterable[tuple[int, str, Any]]) -> bytes:
    """Build a frame from `(channel, type name, value)` triples (simulators and tests)."""
    out = bytearray()
    for channel, name, value in items:
        kind = BY_NAME.get(name)
        if kind is None or not 0 <= channel <= 255:
            raise EncodeError(f"unknown CayenneLPP type {name!r} or channel {channel}")
        out += bytes((channel, kind.code)) + _write(kind, value)
    return bytes(out)
