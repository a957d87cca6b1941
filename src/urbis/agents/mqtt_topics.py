"""The MQTT topics of the IoT agent (the FIWARE IoT Agent ones), parsed and written (pure).

    [/json|/ul]/<apikey>/<device_id>/attrs                 measures (JSON or UltraLight 2.0)
    [/json|/ul]/<apikey>/<device_id>/attrs/<attr>          one measure, its value as payload
    [/json|/ul]/<apikey>/<device_id>/cmdexe                a device's answer to a command
    [/json|/ul]/<apikey>/<device_id>/configuration/commands  a device asks for its config
    /<apikey>/<device_id>/cmd                              commands to the device (published)

The leading slash is optional, as with the FIWARE agents. A `/json` or `/ul` prefix names the
payload format; without one the device's (or group's) `protocol` decides, else the payload's
first character (`{` or `[`: JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

ATTRS = "attrs"
CMDEXE = "cmdexe"
CONFIGURATION = "configuration"
AUTO = "auto"
_PREFIXES = {"json": "json", "ul": "ultralight"}
_KINDS = ("attrs", "attrs/+", "cmdexe", "configuration/commands")


@dataclass(frozen=True, slots=True)
class Topic:
    """What a topic says: payload format, apikey, device, kind and the single attribute."""

    format: str
    apikey: str
    device_id: str
    kind: str
    attr: str | None = None


def subscriptions(shared: str | None = None) -> list[str]:
    """The topic filters the agent subscribes to (`$share/<group>/...` when shared)."""
    out = []
    for prefix in ("", "/json", "/ul"):
        for kind in _KINDS:
            out.append(f"{prefix}/+/+/{kind}")
            out.append(f"{prefix.lstrip('/')}{'/' if prefix else ''}+/+/{kind}")
    return [f"$share/{shared}/{t}" for t in out] if shared else out


def parse(topic: str) -> Topic | None:
    """The meaning of a received topic, or None if it is not one of the agent's."""
    parts = topic.lstrip("/").split("/")
    fmt = AUTO
    if len(parts) >= 4 and parts[0] in _PREFIXES:
        fmt, parts = _PREFIXES[parts[0]], parts[1:]
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    apikey, device_id, rest = parts[0], parts[1], parts[2:]
    if rest == [ATTRS]:
        return Topic(fmt, apikey, device_id, ATTRS)
    if len(rest) == 2 and rest[0] == ATTRS and rest[1]:
        return Topic(fmt, apikey, device_id, ATTRS, rest[1])
    if rest == [CMDEXE]:
        return Topic(fmt, apikey, device_id, CMDEXE)
    if rest == [CONFIGURATION, "commands"]:
        return Topic(fmt, apikey, device_id, CONFIGURATION)
    return None


def command_topic(apikey: str, device_id: str) -> str:
    """Where a device's commands are published."""
    return f"/{apikey}/{device_id}/cmd"


def configuration_topic(apikey: str, device_id: str) -> str:
    """Where the answer to a device's configuration request is published."""
    return f"/{apikey}/{device_id}/configuration/values"


def format_of(protocol: str | None, payload: bytes | str | None) -> str:
    """The payload format of an un-prefixed topic: the device's protocol, else the payload."""
    name = (protocol or "").lower()
    if "ultralight" in name or name.endswith("ul"):
        return "ultralight"
    if "json" in name:
        return "json"
    head = (payload or b"")[:64]
    text = head.decode("latin-1") if isinstance(head, bytes) else head
    return "json" if text.lstrip()[:1] in ("{", "[") else "ultralight"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the MQTT broker is (from `iota_mqtt_url`)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def address(url: str) -> BrokerAddress:
    """The broker of an mqtt:// or mqtts:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("an MQTT URL is mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)
