"""Bad subscription payloads never cause a 500 and never store anything: property-based."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from urbis.api.app import create_app
from urbis.settings import load_settings

S = "/ngsi-ld/v1/subscriptions"
KEEP = f"{S}/urn:ngsi-ld:Subscription:keep"
SUPPRESS = [HealthCheck.function_scoped_fixture]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
MEMBERS = ["id", "type", "subscriptionName", "description", "entities", "watchedAttributes",
           "notificationTrigger", "timeInterval", "q", "geoQ", "scopeQ", "csf", "isActive",
           "expiresAt", "throttling", "lang", "datasetId", "notification"]
NOTIFICATION = ["attributes", "pick", "omit", "format", "showChanges", "sysAttrs", "endpoint"]
ENDPOINT = ["uri", "accept", "timeout", "cooldown", "receiverInfo", "notifierInfo"]
plausible = json_values | st.sampled_from([
    "Subscription", "urn:ngsi-ld:Subscription:x", "speed>3", "/a/#", "keyValues", "normalized",
    "mqtt://h/t", "http://h:80/n", "mqtt://h", "2000-01-01T00:00:00Z", "2099-01-01T00:00:00Z",
    "entityCreated", [{"type": "T"}], [{"key": "MQTT-QoS", "value": "2"}], ["a", "b"], -1, 0,
    {"georel": "near;maxDistance==5", "geometry": "Point", "coordinates": [1, 2]}])


def valid() -> dict[str, Any]:
    """A valid subscription body."""
    return {"type": "Subscription", "entities": [{"type": "T"}],
            "notification": {"endpoint": {"uri": "http://localhost:9/n"}}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client on a real app and store, shared by the examples, with one subscription."""
    path: Path = tmp_path_factory.mktemp("subs") / "urbis.db"
    app = create_app(load_settings(env={}, store=f"sqlite:///{path}", auth=False,
                                   sqlite_synchronous="normal"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(S, json={**valid(), "id": "urn:ngsi-ld:Subscription:keep",
                            "watchedAttributes": ["a"]})
        assert r.status_code == 201
        yield c


def count(client: TestClient) -> int:
    """How many subscriptions are stored."""
    r = client.get(S, params={"count": "true", "limit": "0"})
    return int(r.headers["NGSILD-Results-Count"])


def post_and_check(client: TestClient, body: Any) -> None:
    """POST: a known status; problem+json errors; a 4xx/5xx stores nothing; undo a 201."""
    before = count(client)
    r = client.post(S, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in {201, 400, 409, 503}, (r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
        assert count(client) == before
    else:
        assert client.get(r.headers["location"]).status_code == 200
        assert client.delete(r.headers["location"]).status_code == 204


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(body=json_values)
def test_arbitrary_json(client: TestClient, body: Any) -> None:
    post_and_check(client, body)


@settings(max_examples=300, deadline=None, suppress_health_check=SUPPRESS)
@given(top=st.dictionaries(st.sampled_from(MEMBERS), plausible, max_size=4),
       note=st.dictionaries(st.sampled_from(NOTIFICATION), plausible, max_size=3),
       endpoint=st.dictionaries(st.sampled_from(ENDPOINT), plausible, max_size=3))
def test_members_with_arbitrary_values(client: TestClient, top: dict[str, Any],
                                       note: dict[str, Any], endpoint: dict[str, Any]) -> None:
    body = valid()
    body["notification"]["endpoint"].update(endpoint)
    body["notification"].update(note)
    body.update(top)
    post_and_check(client, body)


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(top=st.dictionaries(st.sampled_from(MEMBERS), plausible, max_size=3),
       note=st.none() | st.dictionaries(st.sampled_from(NOTIFICATION), plausible, max_size=3))
def test_bad_patch_changes_nothing(client: TestClient, top: dict[str, Any],
                                   note: dict[str, Any] | None) -> None:
    before = client.get(KEEP).json()
    fragment = {**top, **({"notification": note} if note is not None else {})}
    r = client.patch(KEEP, content=json.dumps(fragment),
                     headers={"content-type": "application/json"})
    assert r.status_code in {204, 400, 503}, (r.status_code, r.text)
    if r.status_code != 204:
        assert client.get(KEEP).json() == before
    else:  # put the original back for the next example
        restore = {k: v for k, v in before.items() if k not in ("status", "id")}
        restore.update({m: None for m in MEMBERS if m not in restore and m not in ("id", "type")})
        restore["notification"] = {**{m: None for m in NOTIFICATION}, **before["notification"]}
        r = client.patch(KEEP, json=restore)
        assert r.status_code == 204, r.text
        assert client.get(KEEP).json() == before
