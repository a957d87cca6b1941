"""Notification endpoints (ETSI GS CIM 009 V1.8.1 clause 5.2.15) and their MQTT settings.

An endpoint URI is `http(s)://host[:port]/path` or `mqtt(s)://[user[:password]@]host[:port]/
topic[/subtopic...]` (clause 7.3 of the MQTT binding): MQTT topics are published to, so they
must be non-empty and free of the `+` and `#` wildcards. `notifierInfo` may set the MQTT
protocol version and the QoS of the published notifications.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from urbis.context.errors import BadRequestData
from urbis.context.subscription import Endpoint

HTTP_SCHEMES = ("http", "https")
MQTT_SCHEMES = ("mqtt", "mqtts")
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
MQTT_VERSION, MQTT_QOS = "MQTT-Version", "MQTT-QoS"
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
MQTT_QOS_LEVELS = ("0", "1", "2")
MAX_URI = 2048
MAX_PAIRS = 64
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # an HTTP header name (RFC 9110)
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def parse_endpoint(value: Any) -> Endpoint:
    """An Endpoint from its JSON object; BadRequestData on anything invalid."""
    if not isinstance(value, dict):
        raise BadRequestData("notification.endpoint must be a JSON object")
    endpoint = Endpoint(check_endpoint_uri(value.get("uri")))
    accept = value.get("accept")
    if accept is not None:
        if not isinstance(accept, str) or accept not in ACCEPTS:
            raise BadRequestData(f"endpoint accept must be one of {', '.join(ACCEPTS)}, "
                                 f"got {accept!r:.60}")
        endpoint.accept = accept
    endpoint.timeout = _milliseconds(value.get("timeout"), "timeout")
    endpoint.cooldown = _milliseconds(value.get("cooldown"), "cooldown")
    endpoint.receiver_info = _pairs(value.get("receiverInfo"), "receiverInfo")
    endpoint.notifier_info = _pairs(value.get("notifierInfo"), "notifierInfo")
    _check_mqtt_settings(endpoint.notifier_info or [])
    return endpoint


def check_endpoint_uri(uri: Any) -> str:
    """A notification URI with an http, https, mqtt or mqtts scheme, a host and a valid port."""
    if not isinstance(uri, str) or not uri:
        raise BadRequestData("notification.endpoint needs a uri")
    if len(uri) > MAX_URI or _UNSAFE.search(uri):
        raise BadRequestData(f"endpoint uri {uri!r:.100} is too long or has blanks or "
                             "control characters")
    parts = _split(uri)
    scheme = parts.scheme.lower()
    if scheme not in HTTP_SCHEMES + MQTT_SCHEMES:
        raise BadRequestData(f"endpoint uri {uri!r:.100}: the scheme must be http, https, mqtt "
                             "or mqtts")
    if not parts.hostname:
        raise BadRequestData(f"endpoint uri {uri!r:.100} has no host")
    if scheme in MQTT_SCHEMES:
        _check_topic(uri, parts)
    return uri


def mqtt_topic(uri: str) -> str:
    """The topic an mqtt(s) endpoint URI publishes to."""
    return urlsplit(uri).path[1:]


def _split(uri: str) -> SplitResult:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as err:
        raise BadRequestData(f"endpoint uri {uri!r:.100} is not valid: {err}") from None
    if port == 0:
        raise BadRequestData(f"endpoint uri {uri!r:.100}: port 0 is not valid")
    return parts


def _check_topic(uri: str, parts: SplitResult) -> None:
    if parts.query or "#" in uri:
        raise BadRequestData(f"MQTT endpoint {uri!r:.100}: a topic takes no query or '#'")
    topic = parts.path[1:]
    if not topic:
        raise BadRequestData(f"MQTT endpoint {uri!r:.100} names no topic (mqtt://host/topic)")
    if "+" in topic:
        raise BadRequestData(f"MQTT endpoint {uri!r:.100}: notifications cannot be published "
                             "to a wildcard topic")


def _milliseconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0:
        raise BadRequestData(f"endpoint {what} must be a non-negative number of milliseconds, "
                             f"got {value!r:.60}")
    return value


def _pairs(value: Any, what: str) -> list[dict[str, str]] | None:
    """A KeyValuePair array (clause 5.2.22); keys are header-name tokens, values one line."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_PAIRS:
        raise BadRequestData(f"endpoint {what} must be an array of 1 to {MAX_PAIRS} "
                             "{key, value} objects")
    pairs: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise BadRequestData(f"each {what} item must be an object with key and value")
        key, text = item["key"], item["value"]
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise BadRequestData(f"{what} key {key!r:.60} must be a token (letters, digits, -)")
        if not isinstance(text, str) or len(text) > 4096 or "\r" in text or "\n" in text:
            raise BadRequestData(f"{what} value of {key} must be one line of text")
        pairs.append({"key": key, "value": text})
    return pairs


def _check_mqtt_settings(pairs: list[dict[str, str]]) -> None:
    for pair in pairs:
        if pair["key"] == MQTT_VERSION and pair["value"] not in MQTT_VERSIONS:
            raise BadRequestData(f"{MQTT_VERSION} must be one of {', '.join(MQTT_VERSIONS)}, "
                                 f"got {pair['value']!r:.40}")
        if pair["key"] == MQTT_QOS and pair["value"] not in MQTT_QOS_LEVELS:
            raise BadRequestData(f"{MQTT_QOS} must be 0, 1 or 2, got {pair['value']!r:.40}")
