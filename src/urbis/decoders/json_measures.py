"""JSON measures as the FIWARE iotagent-json reads them.

A payload is a flat JSON object `{"t": 25.3, "h": 40}` (one measure group) or an array of such
objects (several groups, each one update). Values keep their JSON type; a value may itself be an
object or array (a structured property). The `TimeInstant` key, when present, is the
observation time of the group's measures and is not a measure itself. Commands are
`{"<command>": <params>}` and the device answers `{"<command>": <result>}`.
"""

from __future__ import annotations

from typing import Any

import orjson

from urbis.decoders.base import (
    Command,
    CommandResult,
    DecodeError,
    EncodeError,
    Measurement,
    as_bytes,
    utc_iso,
)

TIMESTAMP_KEY = "TimeInstant"
MAX_GROUPS = 1000


def load(payload: bytes | str) -> Any:
    """Parse JSON text, turning every failure into DecodeError."""
    data = as_bytes(payload)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("syntax", f"invalid JSON: {exc}") from None


def decode(payload: bytes | str, *, timestamp_key: str = TIMESTAMP_KEY) -> list[Measurement]:
    """Decode a JSON measure payload (an object or an array of objects)."""
    data = load(payload)
    if isinstance(data, dict):
        return _group(data, 0, timestamp_key)
    if isinstance(data, list):
        if len(data) > MAX_GROUPS:
            raise DecodeError("too_large", f"more than {MAX_GROUPS} measure groups")
        out: list[Measurement] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise DecodeError("syntax", f"measure group {index} is not a JSON object")
            out.extend(_group(item, index, timestamp_key))
        return out
    raise DecodeError("syntax", "expected a JSON object or an array of objects")


def _group(data: dict[str, Any], index: int, timestamp_key: str) -> list[Measurement]:
    observed_at = None
    if timestamp_key in data:
        stamp = data[timestamp_key]
        if not isinstance(stamp, str):
            raise DecodeError("invalid_time", f"{timestamp_key} is not a text date-time")
        observed_at = utc_iso(stamp)
    out = []
    for key, value in data.items():
        if key == timestamp_key:
            continue
        if not key.strip():
            raise DecodeError("syntax", f"empty measure name in group {index}")
        out.append(Measurement(key, value, observed_at=observed_at, group=index))
    return out


def decode_single(name: str, payload: bytes | str) -> list[Measurement]:
    """A single measure sent alone (MQTT topic `.../attrs/<name>`): JSON if it parses, else text."""
    data = as_bytes(payload)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DecodeError("encoding", "payload is neither JSON nor UTF-8 text") from None
    return [Measurement(name, value)]


def parse_command(payload: bytes | str, device_id: str | None = None) -> Command:
    """Parse a command as sent to a device: an object with one key, the command name."""
    data = load(payload)
    if not isinstance(data, dict) or len(data) != 1:
        raise DecodeError("syntax", "a JSON command is an object with exactly one key")
    ((name, params),) = data.items()
    return Command(device_id, name, params)


def parse_command_results(
    payload: bytes | str, device_id: str | None = None
) -> list[CommandResult]:
    """Parse a device's command answers `{"<command>": <result>, ...}`."""
    data = load(payload)
    if not isinstance(data, dict) or not data:
        raise DecodeError("syntax", "a JSON command result is a non-empty object")
    return [CommandResult(device_id, name, result) for name, result in data.items()]


def format_command(command: str, params: Any = None) -> bytes:
    """Write a command for a device as JSON."""
    if not command:
        raise EncodeError("empty command name")
    try:
        return orjson.dumps({command: params})
    except TypeError as exc:
        raise EncodeError(f"command parameters are not JSON: {exc}") from None
