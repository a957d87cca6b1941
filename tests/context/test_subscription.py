"""The pure subscription model: AST codecs, stored form, status, endpoints."""

from __future__ import annotations

import json

import pytest

from urbis.context.errors import BadRequestData
from urbis.context.jsonld import TermMap
from urbis.context.query.codec import q_from_json, q_to_json, type_from_json, type_to_json
from urbis.context.query.q import parse_q
from urbis.context.query.types import parse_type_expr
from urbis.context.subscription import Delivery, from_record, to_record
from urbis.context.subscription_endpoint import check_endpoint_uri, mqtt_topic
from urbis.context.subscription_parse import parse_subscription, patch_subscription

TM = TermMap.compile([{"ex": "https://ex.org/", "speed": "ex:speed", "Car": "ex:Car"}],
                     core="1.9")
NOW = "2026-01-01T00:00:00.000000Z"
QS = ['speed>3', 'speed==1..5;a!="x"', '(a|b);!c', 'a.b[c.d]~="^x.*"', 'a!~=y',
      'a==1,2.5,"t",true', 'a.observedAt>=2026-01-01T00:00:00Z', 'a==12:00:00|a==2026-01-01',
      'a==urn:ngsi-ld:X:1', 'gender==Male', 'color[*]=="red"']


@pytest.mark.parametrize("text", QS)
def test_q_codec_round_trips(text: str) -> None:
    node = parse_q(text, TM.expand)
    assert q_from_json(json.loads(json.dumps(q_to_json(node)))) == node


@pytest.mark.parametrize("text", ["Car", "Car,Bus", "(Car;Bus)|Truck", "https://x.org/T"])
def test_type_codec_round_trips(text: str) -> None:
    node = parse_type_expr(text, TM.expand)
    assert type_from_json(json.loads(json.dumps(type_to_json(node)))) == node


def body(**extra: object) -> dict[str, object]:
    """A valid subscription body."""
    out: dict[str, object] = {"type": "Subscription", "entities": [{"type": "Car"}],
                              "notification": {"endpoint": {"uri": "http://h/n"}}}
    out.update(extra)
    return out


def test_record_round_trips() -> None:
    sub = parse_subscription(body(q="speed>3", watchedAttributes=["speed"], isActive=False,
                                  timeInterval=None), TM, NOW, "urn:x:1")
    again = from_record(json.loads(json.dumps(to_record(sub))), Delivery(times_sent=3))
    assert to_record(again) == to_record(sub) and again.delivery.times_sent == 3
    assert again.watched == ["https://ex.org/speed"]


def test_status_and_index_keys() -> None:
    sub = parse_subscription(body(expiresAt="2030-01-01T00:00:00Z"), TM, NOW, "urn:x:1")
    assert sub.status(NOW) == "active" and sub.status("2031-01-01T00:00:00Z") == "expired"
    assert sub.type_keys() == ["https://ex.org/Car"] and sub.attr_keys() == [None]
    paused = patch_subscription(sub, {"isActive": False}, TM, NOW)
    assert paused.status(NOW) == "paused" and sub.status(NOW) == "active"
    periodic = parse_subscription(body(timeInterval=5), TM, NOW, "urn:x:2")
    assert periodic.attr_keys() == []
    watched = parse_subscription({**body(watchedAttributes=["speed"]), "entities": None},
                                 TM, NOW, "urn:x:3")
    assert watched.type_keys() == [None] and watched.attr_keys() == ["https://ex.org/speed"]
    assert watched.effective_triggers == ("attributeCreated", "attributeUpdated")


@pytest.mark.parametrize("uri", ["http://h/n", "https://h:8443/a?b=c", "http://[::1]:80/",
                                 "mqtt://h/t", "mqtts://u:p@h:8883/a/b/c", "MQTT://h/t"])
def test_good_endpoint_uris(uri: str) -> None:
    assert check_endpoint_uri(uri) == uri


@pytest.mark.parametrize("uri", [None, "", "h/n", "ftp://h/x", "http://", "http://h:0/",
                                 "http://h:x/", "http://[::1/", "mqtt://h/", "mqtt://h/a/#",
                                 "mqtt://h/+", "mqtt://h/t?x=1", "http://h/\x00"])
def test_bad_endpoint_uris(uri: object) -> None:
    with pytest.raises(BadRequestData):
        check_endpoint_uri(uri)


def test_mqtt_topic() -> None:
    assert mqtt_topic("mqtt://u:p@h:1883/city/cars") == "city/cars"
