"""What every payload decoder shares: the Measurement it returns, DecodeError and the Protocol.

Decoders are pure: bytes (or text) in, measurements out, no I/O and nothing of urbis but this
module. A measurement keeps the device's own name for the value (the FIWARE `object_id`); the
IoT agents map it onto an NGSI-LD attribute later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

MAX_PAYLOAD_BYTES = 256 * 1024
"""Payloads longer than this are refused before parsing (reason `too_large`)."""

REASONS = frozenset(
    {
        "too_large",  # payload longer than MAX_PAYLOAD_BYTES
        "encoding",  # not UTF-8 text / not valid base64
        "syntax",  # not the expected grammar (JSON, UltraLight, SenML fields)
        "truncated",  # a binary frame ends in the middle of a value
        "unknown_type",  # a binary type code (CayenneLPP) this decoder does not know
        "invalid_value",  # a value of the wrong type or out of range
        "invalid_time",  # a timestamp that is not ISO 8601 or out of range
        "unsupported",  # a feature the payload requires that we do not implement
    }
)


class DecodeError(ValueError):
    """A payload that cannot be decoded; `reason` is one of REASONS (used as a metric label)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown decode error reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class EncodeError(ValueError):
    """A command or value that cannot be written in a device payload format."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value reported by a device.

    `name` is the device-side name (object_id); `unit` a UN/CEFACT common code when known;
    `observed_at` ISO 8601 UTC (`...Z`) or None when the payload carries no time (the agent
    then uses the reception time); `group` numbers the measure groups of one payload (each
    group is one update); `channel` is the CayenneLPP channel; `source_unit` the unit as the
    payload wrote it.
    """

    name: str
    value: Any
    unit: str | None = None
    observed_at: str | None = None
    dataset_id: str | None = None
    channel: int | None = None
    group: int = 0
    source_unit: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A command for a device: `params` is a mapping, a single value, or None."""

    device_id: str | None
    name: str
    params: Any = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A device's answer to a command."""

    device_id: str | None
    name: str
    result: Any


class Decoder(Protocol):
    """A payload decoder: bytes or text in, measurements out; raises DecodeError only."""

    def __call__(self, payload: bytes | str, /) -> list[Measurement]:
        """Decode one payload."""
        ...


def as_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    """The payload as bytes, refusing oversized ones."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"payload of {len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    return data


def as_text(payload: bytes | bytearray | memoryview | str) -> str:
    """The payload as text (UTF-8), refusing oversized or undecodable ones."""
    if isinstance(payload, str):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise DecodeError("too_large", f"payload of {len(payload)} characters")
        try:
            payload.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError("encoding", "payload holds unpaired surrogates") from None
        return payload
    try:
        return as_bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("encoding", f"payload is not UTF-8 ({exc.reason})") from None


_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,12}))?)?"
    r"(Z|z|[+-]\d\d(?::?\d\d)?)?",
    re.ASCII,
)
ISO_DATETIME = _ISO
"""Regex of the ISO 8601 date-times accepted by `utc_iso` (also used to spot timestamps)."""


def format_utc(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC text ending in Z (milli- or microseconds if any)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond == 0:
        spec = "seconds"
    elif moment.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def utc_iso(text: str) -> str:
    """Normalise an ISO 8601 date-time (UTC assumed when it has no offset) to `...Z` text."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise DecodeError("invalid_time", f"not an ISO 8601 date-time: {text[:40]!r}")
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(sec or 0), micro, UTC
        )
        if zone and zone not in ("Z", "z"):
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            moment = moment - offset if zone[0] == "+" else moment + offset
    except (ValueError, OverflowError):
        raise DecodeError("invalid_time", f"date-time out of range: {text[:40]!r}") from None
    return format_utc(moment)


def utc_from_epoch(seconds: float) -> str:
    """Seconds since 1970-01-01T00:00:00Z as ISO 8601 UTC text."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise DecodeError("invalid_time", f"epoch time out of range: {seconds!r}") from None
    return format_utc(moment)
