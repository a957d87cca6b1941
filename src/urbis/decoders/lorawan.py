"""Uplink messages of LoRaWAN network servers: The Things Stack v3 webhooks, ChirpStack v4 events.

`parse_uplink` reads either JSON into an `Uplink` (device, reception time, FPort, raw payload
bytes and the network server's own decoded payload if it has one); `measurements` turns an uplink
into measurements, with the given payload decoder (CayenneLPP, a device-model decoder) or from the
server's decoded object, each stamped with the reception time unless the decoder gave one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from urbis.decoders.base import DecodeError, Decoder, Measurement, utc_iso
from urbis.decoders.json_measures import load


@dataclass(frozen=True, slots=True)
class Uplink:
    """One uplink as a network server reported it."""

    network: str  # "ttn" (The Things Stack v3) or "chirpstack" (v4)
    device_id: str
    dev_eui: str | None
    application_id: str | None
    received_at: str | None
    f_port: int | None
    f_cnt: int | None
    payload: bytes
    decoded: dict[str, Any] | None = None
    device_name: str | None = None


def _obj(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise DecodeError("syntax", f"`{key}` is missing or not an object")
    return value


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError("invalid_value", f"`{key}` is not text")
    return value


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecodeError("invalid_value", f"`{key}` is not a non-negative integer")
    return value


def _b64(text: str | None) -> bytes:
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("encoding", "the payload is not base64") from None


def _decoded(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError("invalid_value", "the decoded payload is not a JSON object")
    return value


def _time(text: str | None) -> str | None:
    return utc_iso(text) if text else None


def parse_tts(body: bytes | str | Mapping[str, Any]) -> Uplink:
    """Parse a The Things Stack v3 uplink webhook body (`uplink_message`)."""
    data = load(body) if isinstance(body, bytes | str) else body
    if not isinstance(data, Mapping):
        raise DecodeError("syntax", "an uplink is a JSON object")
    ids = _obj(data, "end_device_ids")
    message = _obj(data, "uplink_message")
    device_id = _text(ids, "device_id")
    if not device_id:
        raise DecodeError("syntax", "`end_device_ids.device_id` is missing")
    app = ids.get("application_ids")
    return Uplink(
        network="ttn",
        device_id=device_id,
        dev_eui=_text(ids, "dev_eui"),
        application_id=_text(app, "application_id") if isinstance(app, dict) else None,
        received_at=_time(_text(message, "received_at") or _text(data, "received_at")),
        f_port=_int(message, "f_port"),
        f_cnt=_int(message, "f_cnt"),
        payload=_b64(_text(message, "frm_payload")),
        decoded=_decoded(message.get("decoded_payload")),
    )


def parse_chirpstack(body: bytes | str | Mapping[str, Any]) -> Uplink:
    """Parse a ChirpStack v4 uplink event (JSON marshaler): `deviceInfo`, `data`, `object`."""
    data = load(body) if isinstance(body, bytes | str) else body
    if not isinstance(data, Mapping):
        raise DecodeError("syntax", "an uplink is a JSON object")
    info = _obj(data, "deviceInfo")
    dev_eui = _text(info, "devEui")
    if not dev_eui:
        raise DecodeError("syntax", "`deviceInfo.devEui` is missing")
    return Uplink(
        network="chirpstack",
        device_id=dev_eui.lower(),
        dev_eui=dev_eui.lower(),
        application_id=_text(info, "applicationId"),
        received_at=_time(_text(data, "time")),
        f_port=_int(data, "fPort"),
        f_cnt=_int(data, "fCnt"),
        payload=_b64(_text(data, "data")),
        decoded=_decoded(data.get("object")),
        device_name=_text(info, "deviceName"),
    )


def parse_uplink(body: bytes | str | Mapping[str, Any]) -> Uplink:
    """Parse an uplink from either network server, recognised by its shape."""
    data = load(body) if isinstance(body, bytes | str) else body
    if isinstance(data, Mapping) and "end_device_ids" in data:
        return parse_tts(data)
    if isinstance(data, Mapping) and "deviceInfo" in data:
        return parse_chirpstack(data)
    raise DecodeError("syntax", "neither a The Things Stack nor a ChirpStack uplink")


def measurements(uplink: Uplink, decoder: Decoder | None = None) -> list[Measurement]:
    """The uplink's measurements: decoded with `decoder`, else from the server's decoded object."""
    if decoder is not None:
        found = decoder(uplink.payload)
    elif uplink.decoded is not None:
        found = [Measurement(str(k), v) for k, v in uplink.decoded.items()]
    else:
        raise DecodeError("unsupported", "no decoder and no decoded payload for this uplink")
    return [
        m if m.observed_at else dataclasses.replace(m, observed_at=uplink.received_at)
        for m in found
    ]
