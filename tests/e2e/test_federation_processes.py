"""Federated urbis processes on loopback: a department's broker, the city's, and a cycle."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_servers import Server

pytestmark = pytest.mark.slow
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts and no cooldown in the servers these tests start."""
    monkeypatch.setenv("URBIS_FEDERATION_TIMEOUT", "2")
    monkeypatch.setenv("URBIS_FEDERATION_COOLDOWN", "0")


def prop(value: Any) -> dict[str, Any]:
    """A Property."""
    return {"type": "Property", "value": value}


def create(server: Server, entity_id: str, type_: str, **attrs: Any) -> None:
    """Create an entity on a server."""
    r = httpx.post(f"{server.api}/entities", json={"id": entity_id, "type": type_, **attrs})
    assert r.status_code == 201, r.text


def register(server: Server, source: Server, types: list[str], **extra: Any) -> str:
    """Register `source` at `server` for entities of these types."""
    body = {"type": "ContextSourceRegistration", "endpoint": f"http://127.0.0.1:{source.port}",
            "information": [{"entities": [{"type": t} for t in types]}], **extra}
    r = httpx.post(f"{server.api}/csourceRegistrations", json=body)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[-1]


def ids(server: Server, **params: Any) -> list[str]:
    """Ids of a query's answer (asserting no source was left out)."""
    r = httpx.get(f"{server.api}/entities", params=params, timeout=10)
    assert r.status_code == 200, r.text
    assert not r.headers.get_list("NGSILD-Warning"), r.headers
    return [e["id"] for e in r.json()]


def test_the_city_answers_with_its_department(tmp_path: Path,
                                              serve: Callable[..., Server]) -> None:
    dept = serve(f"sqlite:///{tmp_path}/dept.db")
    city = serve(f"sqlite:///{tmp_path}/city.db")
    for n in (1, 2, 3):
        create(dept, f"urn:ngsi-ld:Streetlight:{n}", "Streetlight", power=prop(n * 10))
    create(city, "urn:ngsi-ld:Streetlight:2", "Streetlight", note=prop("checked"))
    create(city, "urn:ngsi-ld:Bench:1", "Bench", seats=prop(3))
    register(city, dept, ["Streetlight"])

    assert ids(city, type="Streetlight") == [f"urn:ngsi-ld:Streetlight:{n}" for n in (1, 2, 3)]
    two = httpx.get(f"{city.api}/entities/urn:ngsi-ld:Streetlight:2",
                    params={"options": "keyValues"}).json()
    assert two == {"id": "urn:ngsi-ld:Streetlight:2", "type": "Streetlight", "power": 20,
                   "note": "checked"}
    assert ids(city, type="Streetlight", local="true") == ["urn:ngsi-ld:Streetlight:2"]

    # The same attribute in both places: the most recently modified instance wins.
    r = httpx.post(f"{city.api}/entities/urn:ngsi-ld:Streetlight:2/attrs",
                   json={"power": prop(21)})
    assert r.status_code == 204, r.text
    assert _value(city, "urn:ngsi-ld:Streetlight:2", "power") == 21
    time.sleep(0.01)
    r = httpx.patch(f"{dept.api}/entities/urn:ngsi-ld:Streetlight:2/attrs",
                    json={"power": prop(22)})
    assert r.status_code == 204, r.text
    assert _value(city, "urn:ngsi-ld:Streetlight:2", "power") == 22

    # The department goes down: the city still answers, and says who is missing.
    dept.stop()
    r = httpx.get(f"{city.api}/entities", params={"type": "Streetlight"}, timeout=10)
    assert r.status_code == 200
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Streetlight:2"]
    [warning] = r.headers.get_list("NGSILD-Warning")
    assert warning.startswith("199 ")


def test_a_command_reaches_the_department_that_holds_the_actuator(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    dept = serve(f"sqlite:///{tmp_path}/dept.db")
    city = serve(f"sqlite:///{tmp_path}/city.db")
    lamp = "urn:ngsi-ld:Streetlight:7"
    create(dept, lamp, "Streetlight", switch=prop("on"), power=prop(70))
    register(city, dept, ["Streetlight"], mode="exclusive", operations=["updateOps",
                                                                        "retrieveOps"],
             information=[{"entities": [{"type": "Streetlight", "id": lamp}],
                           "propertyNames": ["switch"]}])
    r = httpx.patch(f"{city.api}/entities/{lamp}/attrs/switch", json={"value": "off"})
    assert r.status_code == 204, r.text
    assert _value(dept, lamp, "switch") == "off"
    assert httpx.get(f"{city.api}/entities/{lamp}", params={"local": "true"}).status_code == 404
    assert _value(city, lamp, "switch") == "off"  # read through the registration


def test_three_brokers_with_a_cycle_answer_once(tmp_path: Path,
                                                serve: Callable[..., Server]) -> None:
    city = serve(f"sqlite:///{tmp_path}/city.db")
    lights = serve(f"sqlite:///{tmp_path}/lights.db")
    parks = serve(f"sqlite:///{tmp_path}/parks.db")
    create(city, "urn:ngsi-ld:Kiosk:c", "Kiosk", open=prop(True))
    create(lights, "urn:ngsi-ld:Streetlight:a", "Streetlight", power=prop(1))
    create(parks, "urn:ngsi-ld:Bench:b", "Bench", seats=prop(4))
    register(city, lights, ["Streetlight"])
    register(city, parks, ["Bench"])
    register(lights, city, ["Bench", "Kiosk"])  # the lighting department asks the city back

    everything = ["urn:ngsi-ld:Bench:b", "urn:ngsi-ld:Kiosk:c", "urn:ngsi-ld:Streetlight:a"]
    assert ids(city, type="Streetlight,Bench,Kiosk") == everything
    # lights -> city -> parks; the city does not ask lights again (it is in the Via chain)
    start = time.monotonic()
    assert ids(lights, type="Streetlight,Bench,Kiosk") == everything
    assert time.monotonic() - start < 2
    bench = httpx.get(f"{lights.api}/entities/urn:ngsi-ld:Bench:b").json()
    assert bench["seats"]["value"] == 4
    types = httpx.get(f"{lights.api}/types").json()["typeList"]
    assert sorted(types) == ["Bench", "Kiosk", "Streetlight"]


def _value(server: Server, entity_id: str, attr: str) -> Any:
    r = httpx.get(f"{server.api}/entities/{entity_id}", params={"options": "keyValues"})
    assert r.status_code == 200, r.text
    return r.json()[attr]
