"""UltraLight 2.0, the FIWARE text protocol for constrained devices.

Measures are `key|value` pairs separated by `|` (`t|25.3|h|40`); several groups are joined with
`#` and each group is one update; a group may start with an ISO 8601 timestamp
(`2026-01-01T00:00:00Z|t|25`). Values are untyped text. Commands are
`<device>@<command>|<param>=<value>|...` (or `<device>@<command>|<value>`) and the device answers
`<device>@<command>|<result>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from urbis.decoders.base import (
    ISO_DATETIME,
    Command,
    CommandResult,
    DecodeError,
    EncodeError,
    Measurement,
    as_text,
    utc_iso,
)

_RESERVED = frozenset("|#@")


def decode(payload: bytes | str) -> list[Measurement]:
    """Decode an UltraLight 2.0 measure payload (one or more `#`-separated groups)."""
    text = as_text(payload).strip()
    if not text:
        raise DecodeError("syntax", "empty UltraLight payload")
    measures: list[Measurement] = []
    groups = [g.strip() for g in text.split("#")]
    for index, group in enumerate(g for g in groups if g):
        measures.extend(_group(group, index))
    if not measures:
        raise DecodeError("syntax", "UltraLight payload holds no measure")
    return measures


def _group(group: str, index: int) -> list[Measurement]:
    fields = group.split("|")
    observed_at = None
    first = fields[0].strip()
    if len(fields) % 2 == 1 and first[:1].isdigit() and ISO_DATETIME.fullmatch(first):
        observed_at = utc_iso(fields[0])
        fields = fields[1:]
    if len(fields) % 2 == 1:
        raise DecodeError("syntax", f"measure group {index} has a key without a value")
    out = []
    for pos in range(0, len(fields), 2):
        key = fields[pos].strip()
        if not key:
            raise DecodeError("syntax", f"empty measure name in group {index}")
        if "@" in key:
            raise DecodeError("syntax", f"{key!r} looks like a command result, not a measure")
        out.append(Measurement(key, fields[pos + 1], observed_at=observed_at, group=index))
    return out


def decode_single(name: str, payload: bytes | str) -> list[Measurement]:
    """A single measure sent as a bare value (MQTT topic `/<apikey>/<device>/attrs/<name>`)."""
    return [Measurement(name, as_text(payload).strip())]


def is_command_result(payload: bytes | str) -> bool:
    """Whether a payload is a command result (`<device>@<command>|...`) rather than measures."""
    try:
        head = as_text(payload).lstrip().split("|", 1)[0]
    except DecodeError:
        return False
    return "@" in head


def _command_head(text: str) -> tuple[str, str, list[str]]:
    head, *rest = text.strip().split("|")
    device, sep, name = head.partition("@")
    if not sep or not device.strip() or not name.strip():
        raise DecodeError("syntax", "expected `<device>@<command>|...`")
    return device.strip(), name.strip(), rest


def parse_command(payload: bytes | str) -> Command:
    """Parse a command as sent to a device; params are a dict when every part is `k=v`."""
    device, name, rest = _command_head(as_text(payload))
    if not rest:
        return Command(device, name, None)
    if all("=" in part for part in rest):
        params = dict(part.split("=", 1) for part in rest)
        return Command(device, name, params)
    return Command(device, name, "|".join(rest))


def parse_command_result(payload: bytes | str) -> CommandResult:
    """Parse a device's command answer `<device>@<command>|<result>`."""
    device, name, rest = _command_head(as_text(payload))
    return CommandResult(device, name, "|".join(rest).strip())


def format_value(value: Any) -> str:
    """A value as UltraLight text (booleans lowercase, None empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise EncodeError(f"UltraLight cannot carry a {type(value).__name__} value")


def _clean(text: str, what: str) -> str:
    if not text or _RESERVED & set(text) or any(c in text for c in "\r\n"):
        raise EncodeError(f"{what} {text!r} is empty or holds one of | # @ or a line break")
    return text


def format_command(device_id: str, command: str, params: Any = None) -> str:
    """Write a command for a device: a mapping becomes `k=v` pairs, anything else one value."""
    head = f"{_clean(device_id, 'device id')}@{_clean(command, 'command')}"
    if params is None:
        return head
    if isinstance(params, Mapping):
        parts = [f"{_clean(str(k), 'parameter')}={format_value(v)}" for k, v in params.items()]
        if any("=" in str(k) for k in params):
            raise EncodeError("a parameter name holds '='")
        return "|".join([head, *parts])
    value = format_value(params)
    if "#" in value or "\n" in value:
        raise EncodeError("a command value holds '#' or a line break")
    return f"{head}|{value}"


def format_command_result(device_id: str, command: str, result: Any) -> str:
    """Write a device's command answer (the device side; used by simulators and tests)."""
    return f"{_clean(device_id, 'device id')}@{_clean(command, 'command')}|{format_value(result)}"


def format_measures(values: Mapping[str, Any], timestamp: str | None = None) -> str:
    """Write one measure group (the device side; used by simulators and tests)."""
    parts = [timestamp] if timestamp else []
    for key, value in values.items():
        text = format_value(value)
        if _RESERVED & (set(text) - {"@"}) or "\n" in text:
            raise EncodeError(f"value of {key!r} holds '|' or '#'")
        parts += [_clean(key, "measure name"), text]
    return "|".join(parts)
