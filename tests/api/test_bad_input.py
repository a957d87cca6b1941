"""Bad input never causes a 500, never applies partially: property-based, through HTTP."""

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

E = "/ngsi-ld/v1/entities"
SUPPRESS = [HealthCheck.function_scoped_fixture]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
attr_keys = st.sampled_from(["type", "value", "object", "languageMap", "vocab", "json",
                             "valueList", "objectList", "observedAt", "unitCode", "datasetId",
                             "coordinates", "sub"])
attr_types = st.sampled_from(["Property", "Relationship", "GeoProperty", "LanguageProperty",
                              "VocabProperty", "JsonProperty", "ListProperty",
                              "ListRelationship", "Point", "Polygon", "nonsense"])
attributes = st.dictionaries(attr_keys, json_values | attr_types, max_size=4) | json_values


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client on a real app and store, shared by the examples."""
    path: Path = tmp_path_factory.mktemp("bad") / "urbis.db"
    app = create_app(load_settings(env={}, store=f"sqlite:///{path}", auth=False,
                                   sqlite_synchronous="normal"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(E, json={"id": "urn:ngsi-ld:T:keep", "type": "T",
                            "a": {"type": "Property", "value": 1}})
        assert r.status_code == 201
        yield c


def assert_clean(r: Any, allowed: set[int]) -> None:
    """A known status; errors as problem+json."""
    assert r.status_code in allowed, (r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")


@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
@given(body=json_values)
def test_arbitrary_json_as_entity(client: TestClient, body: Any) -> None:
    r = client.post(E, content=json.dumps(body), headers={"content-type": "application/json"})
    assert_clean(r, {201, 400, 409})


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(name=st.text(min_size=1, max_size=10), attr=attributes)
def test_arbitrary_attribute_on_create(client: TestClient, name: str, attr: Any) -> None:
    body = {"id": "urn:ngsi-ld:T:new", "type": "T", name: attr}
    r = client.post(E, json=body)
    assert_clean(r, {201, 400})
    if r.status_code == 201:
        assert client.delete(f"{E}/urn:ngsi-ld:T:new").status_code == 204


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(attr=attributes, good=st.booleans())
def test_bad_patch_changes_nothing(client: TestClient, attr: Any, good: bool) -> None:
    before = client.get(f"{E}/urn:ngsi-ld:T:keep").json()
    body = {"b": {"type": "Property", "value": 2}, "x": attr} if good else {"x": attr}
    r = client.post(f"{E}/urn:ngsi-ld:T:keep/attrs", json=body)
    assert_clean(r, {204, 400})
    if r.status_code == 400:
        assert client.get(f"{E}/urn:ngsi-ld:T:keep").json() == before
    else:
        client.delete(f"{E}/urn:ngsi-ld:T:keep/attrs/x")
        client.delete(f"{E}/urn:ngsi-ld:T:keep/attrs/b")


@settings(max_examples=200, deadline=None, suppress_health_check=SUPPRESS)
@given(q=st.text(max_size=30), type_=st.text(max_size=10), georel=st.text(max_size=15),
       coords=st.text(max_size=15), scope=st.text(max_size=10))
def test_arbitrary_query_parameters(client: TestClient, q: str, type_: str, georel: str,
                                    coords: str, scope: str) -> None:
    params = {"type": type_ or "T", "q": q, "scopeQ": scope, "georel": georel,
              "geometry": "Point", "coordinates": coords}
    assert_clean(client.get(E, params={k: v for k, v in params.items() if v}), {200, 400})


def test_malformed_bodies(client: TestClient) -> None:
    for raw in (b"", b"{", b"[1,", b"\xff\xfe", b"nul", b'{"id": "urn:x:1", "type": "T",}'):
        r = client.post(E, content=raw, headers={"content-type": "application/json"})
        assert_clean(r, {400})


@pytest.mark.parametrize("geo_attr", ["location", "observationSpace", "operationSpace"])
@pytest.mark.parametrize("value", [
    {"type": "Property", "value": 5},  # the plain-Property fast path
    {"type": "Property", "value": "here", "observedAt": "2026-01-01T00:00:00Z"},
    5, "somewhere", [1, 2],  # concise bare values
    {"type": "Relationship", "object": "urn:x:1"},
])
def test_core_geo_attributes_must_be_geoproperties(client: TestClient, geo_attr: str,
                                                   value: Any) -> None:
    body = {"id": "urn:ngsi-ld:T:geo-check", "type": "T", geo_attr: value}
    r = client.post(E, json=body)
    assert_clean(r, {400})
    assert r.json()["detail"].endswith("must be a GeoProperty")
    assert client.get(f"{E}/urn:ngsi-ld:T:geo-check").status_code == 404
    client.post(E, json={"id": "urn:ngsi-ld:T:geo-ok", "type": "T"})
    assert client.get(f"{E}/urn:ngsi-ld:T:geo-ok").status_code == 200
    patch = client.patch(f"{E}/urn:ngsi-ld:T:geo-ok/attrs", json={geo_attr: value})
    assert_clean(patch, {400})
