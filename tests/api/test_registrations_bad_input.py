"""Bad registration payloads never cause a 500 and never store anything: property-based."""

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

R = "/ngsi-ld/v1/csourceRegistrations"
KEEP = f"{R}/urn:ngsi-ld:ContextSourceRegistration:keep"
SUPPRESS = [HealthCheck.function_scoped_fixture]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
MEMBERS = ["id", "type", "registrationName", "description", "information", "tenant",
           "observationInterval", "managementInterval", "location", "observationSpace",
           "operationSpace", "expiresAt", "endpoint", "contextSourceInfo", "scope", "mode",
           "operations", "refreshRate", "management", "extra"]
plausible = json_values | st.sampled_from([
    "ContextSourceRegistration", "urn:ngsi-ld:ContextSourceRegistration:x", "http://h:80/n",
    "exclusive", "redirect", "auxiliary", "inclusive", ["federationOps"], ["updateEntity"],
    "2000-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "PT1S", "/a/b",
    [{"entities": [{"type": "T", "id": "urn:a:1"}], "propertyNames": ["p"]}],
    [{"entities": [{"type": "T", "idPattern": "("}]}], [{"key": "k", "value": "v"}],
    {"type": "Point", "coordinates": [1, 2]}, {"startAt": "2020-01-01T00:00:00Z"},
    {"localOnly": True, "timeout": 5}])


def valid() -> dict[str, Any]:
    """A valid registration body."""
    return {"type": "ContextSourceRegistration", "endpoint": "http://localhost:9/",
            "information": [{"entities": [{"type": "T"}]}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client on a real app and store, shared by the examples, with one registration."""
    path: Path = tmp_path_factory.mktemp("regs") / "urbis.db"
    app = create_app(load_settings(env={}, store=f"sqlite:///{path}", auth=False,
                                   sqlite_synchronous="normal"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(R, json={**valid(), "id": "urn:ngsi-ld:ContextSourceRegistration:keep"})
        assert r.status_code == 201
        yield c


def count(client: TestClient) -> int:
    """How many registrations are stored."""
    r = client.get(R, params={"count": "true", "limit": "0"})
    return int(r.headers["NGSILD-Results-Count"])


@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
@given(body=json_values | st.dictionaries(st.sampled_from(MEMBERS), plausible, max_size=5))
def test_arbitrary_bodies(client: TestClient, body: Any) -> None:
    if isinstance(body, dict) and "information" not in body:
        body = {**valid(), **body}
    before = count(client)
    r = client.post(R, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in {201, 400, 409}, (r.status_code, r.text)
    if r.status_code >= 400:
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
        assert count(client) == before
    else:
        assert client.get(r.headers["location"]).status_code == 200
        assert client.delete(r.headers["location"]).status_code == 204


@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
@given(fragment=st.dictionaries(st.sampled_from(MEMBERS), plausible, max_size=3))
def test_bad_patch_changes_nothing(client: TestClient, fragment: dict[str, Any]) -> None:
    before = client.get(KEEP).json()
    r = client.patch(KEEP, content=json.dumps(fragment),
                     headers={"content-type": "application/json"})
    assert r.status_code in {204, 400, 409}, (r.status_code, r.text)
    if r.status_code != 204:
        assert client.get(KEEP).json() == before
    else:  # put the original back for the next example
        restore = {m: None for m in MEMBERS if m not in ("id", "type")}
        restore.update({k: v for k, v in before.items() if k not in ("id", "type")})
        r = client.patch(KEEP, json=restore)
        assert r.status_code == 204, r.text
        assert client.get(KEEP).json() == before
