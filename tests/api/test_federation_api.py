"""Distributed operations against a mock context source (ETSI GS CIM 009 V1.8.1 clause 4.3.6).

The broker under test runs in-process (ASGI client); the source is a real HTTP server on
loopback (tests/federation_source.py) that can be slow, fail, or answer garbage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from federation_source import MockSource
from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.settings import Settings

E = "/ngsi-ld/v1/entities"
R = "/ngsi-ld/v1/csourceRegistrations"
LAMP = "urn:ngsi-ld:Streetlight:1"
OLD, NEW = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"


def prop(value: Any, at: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Property (with observedAt and modifiedAt `at`)."""
    out: dict[str, Any] = {"type": "Property", "value": value, **extra}
    if at is not None:
        out["observedAt"] = out["modifiedAt"] = out["createdAt"] = at
    return out


def lamp(entity_id: str = LAMP, **attrs: Any) -> dict[str, Any]:
    """A Streetlight as the source renders it (normalized, system attributes)."""
    return {"id": entity_id, "type": "Streetlight", "createdAt": OLD, "modifiedAt": NEW,
            **attrs}


def registration(source: MockSource, **extra: Any) -> dict[str, Any]:
    """An inclusive registration of the source's Streetlights."""
    return {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
            "information": [{"entities": [{"type": "Streetlight"}]}], **extra}


@pytest.fixture
def source() -> Iterator[MockSource]:
    """A running mock source."""
    src = MockSource().start()
    yield src
    src.stop()


@pytest.fixture
async def city(settings: Settings) -> AsyncIterator[Broker]:
    """The broker under test: short timeout, no cooldown unless a test sets one."""
    b = await build_broker(replace(settings, federation_timeout=0.5, federation_cooldown=0.0))
    yield b
    await b.close()


@pytest.fixture
async def api(settings: Settings, city: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the broker under test."""
    app = create_app(settings, broker=city)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        yield c


async def register(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Create a registration; its id."""
    r = await api.post(R, json=body)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[-1]


def warnings(r: httpx.Response) -> list[str]:
    """The NGSILD-Warning values of a response."""
    return r.headers.get_list("NGSILD-Warning")


# --- retrieval ---------------------------------------------------------------------------


async def test_retrieve_merges_most_recent_instance_per_attribute_and_dataset(
        api: httpx.AsyncClient, source: MockSource) -> None:
    r = await api.post(E, json={"id": LAMP, "type": "Streetlight",
                                "power": prop(10, NEW), "status": prop("on"),
                                "lux": [prop(1, NEW, datasetId="urn:a"),
                                        prop(2, OLD, datasetId="urn:b")]})
    assert r.status_code == 201, r.text
    source.put(lamp(power=prop(99, OLD), colour=prop("warm", OLD),
                    lux=[prop(5, OLD, datasetId="urn:a"), prop(6, NEW, datasetId="urn:b"),
                         prop(7, OLD, datasetId="urn:c")]))
    await register(api, registration(source, tenant="lights",
                                     contextSourceInfo=[{"key": "X-Token", "value": "s3cret"}]))
    r = await api.get(f"{E}/{LAMP}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["power"]["value"] == 10  # the local one is newer
    assert body["colour"]["value"] == "warm" and body["status"]["value"] == "on"
    assert {i["datasetId"]: i["value"] for i in body["lux"]} == {
        "urn:a": 1, "urn:b": 6, "urn:c": 7}
    assert not warnings(r)
    [seen] = source.requests("GET")
    assert seen.path == f"/ngsi-ld/v1/entities/{LAMP}"
    assert seen.params["options"] == "sysAttrs"
    assert seen.headers["ngsild-tenant"] == "lights" and seen.headers["x-token"] == "s3cret"
    assert seen.headers["via"] == "1.1 127.0.0.1:1026"
    assert "json-ld#context" in seen.headers["link"]


async def test_an_entity_only_the_source_has_is_returned(api: httpx.AsyncClient,
                                                         source: MockSource) -> None:
    source.put(lamp(power=prop(3, OLD)))
    await register(api, registration(source))
    r = await api.get(f"{E}/{LAMP}", params={"options": "keyValues"})
    assert r.status_code == 200 and r.json() == {"id": LAMP, "type": "Streetlight", "power": 3}
    r = await api.get(f"{E}/urn:ngsi-ld:Streetlight:none")
    assert r.status_code == 404 and not warnings(r)


@pytest.mark.parametrize(("behaviour", "code", "text"), [
    ("error", "299", "answered 500 the source broke"),
    ("garbage", "299", "unusable answer"),
    ("wrong", "299", "unusable answer"),
    ("slow", "199", "unreachable: no answer within 0.5 s"),
])
async def test_a_failing_source_never_fails_the_read(
        api: httpx.AsyncClient, city: Broker, source: MockSource, behaviour: str, code: str,
        text: str) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10)})
    reg_id = await register(api, registration(source, registrationName="lights"))
    source.behaviour, source.delay = behaviour, 3.0
    start = time.monotonic()
    r = await api.get(f"{E}/{LAMP}")
    assert time.monotonic() - start < 2.5
    assert r.status_code == 200 and r.json()["power"]["value"] == 10
    [warning] = warnings(r)
    assert warning.startswith(f'{code} {reg_id} "') and text in warning
    assert city.federation is not None
    await city.federation.health.flush()
    reg = (await api.get(f"{R}/{reg_id}")).json()
    assert (reg["status"], reg["timesSent"], reg["timesFailed"]) == ("failed", 1, 1)
    assert "lastFailure" in reg and "lastSuccess" not in reg


async def test_a_source_that_is_down_is_named_and_nobody_has_it_is_404(
        api: httpx.AsyncClient, source: MockSource) -> None:
    reg_id = await register(api, registration(source))
    source.stop()
    r = await api.get(f"{E}/{LAMP}")
    assert r.status_code == 404
    assert r.json()["type"].endswith("ResourceNotFound")
    [warning] = warnings(r)
    assert warning.startswith(f"199 {reg_id} ")


async def test_cooldown_spares_a_failed_source(settings: Settings, source: MockSource) -> None:
    broker = await build_broker(replace(settings, federation_timeout=0.5,
                                        federation_cooldown=60.0))
    app = create_app(settings, broker=broker)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://urbis.test") as api:
        await register(api, registration(source))
        source.behaviour = "error"
        first = await api.get(f"{E}/{LAMP}")
        second = await api.get(f"{E}/{LAMP}")
        assert "answered 500" in warnings(first)[0]
        assert "cooldown" in warnings(second)[0]
        assert len(source.requests()) == 1
    await broker.close()


async def test_loops_are_cut_with_via(api: httpx.AsyncClient, source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10)})
    source.put(lamp(colour=prop("warm", OLD)))
    await register(api, registration(source))
    for via in ("1.1 127.0.0.1:1026", f"1.1 elsewhere, 1.1 127.0.0.1:{source.port}"):
        r = await api.get(f"{E}/{LAMP}", headers={"Via": via})
        assert r.status_code == 200 and "colour" not in r.json()
    assert not source.requests()
    r = await api.get(f"{E}/{LAMP}", headers={"Via": "1.0 elsewhere"})
    assert "colour" in r.json()
    assert source.requests()[0].headers["via"] == "1.0 elsewhere, 1.1 127.0.0.1:1026"


async def test_local_true_keeps_reads_local(api: httpx.AsyncClient, source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10)})
    source.put(lamp(colour=prop("warm", OLD)))
    await register(api, registration(source))
    assert "colour" not in (await api.get(f"{E}/{LAMP}", params={"local": "true"})).json()
    r = await api.get(E, params={"type": "Streetlight", "local": "true"})
    assert [e["id"] for e in r.json()] == [LAMP] and "colour" not in r.json()[0]
    r = await api.post("/ngsi-ld/v1/entityOperations/query",
                       json={"type": "Query", "entities": [{"type": "Streetlight"}],
                             "local": True})
    assert r.status_code == 200 and "colour" not in r.json()[0]
    assert not source.requests()
    r = await api.get(E, params={"type": "Streetlight", "local": "maybe"})
    assert r.status_code == 400


async def test_auxiliary_sources_only_fill_gaps(api: httpx.AsyncClient,
                                                source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10, OLD)})
    source.put(lamp(power=prop(99, NEW), colour=prop("warm", OLD)))
    await register(api, registration(source, mode="auxiliary",
                                     operations=["retrieveOps"]))
    body = (await api.get(f"{E}/{LAMP}")).json()
    assert body["power"]["value"] == 10  # here already: the newer auxiliary one is not used
    assert body["colour"]["value"] == "warm"  # a gap: filled


async def test_exclusive_attributes_are_not_read_locally(api: httpx.AsyncClient,
                                                         source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10, NEW)})
    source.put(lamp(power=prop(1, OLD), dim=prop(40, OLD)))
    await register(api, {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
                         "mode": "exclusive", "operations": ["retrieveOps", "updateOps"],
                         "information": [{"entities": [{"type": "Streetlight", "id": LAMP}],
                                          "propertyNames": ["dim"]}]})
    body = (await api.get(f"{E}/{LAMP}")).json()
    assert body["power"]["value"] == 10 and body["dim"]["value"] == 40
    assert source.requests()[0].params["attrs"] == "dim"


# --- queries -----------------------------------------------------------------------------


async def test_query_pages_over_merged_results(api: httpx.AsyncClient,
                                               source: MockSource) -> None:
    for n in (1, 3, 5):
        await api.post(E, json={"id": f"urn:ngsi-ld:Streetlight:{n}", "type": "Streetlight",
                                "power": prop(n)})
    for n in (2, 3, 4):
        source.put(lamp(f"urn:ngsi-ld:Streetlight:{n}", colour=prop("c", OLD)))
    await register(api, registration(source))
    ids: list[str] = []
    for offset in (0, 2, 4):
        r = await api.get(E, params={"type": "Streetlight", "limit": 2, "offset": offset,
                                     "count": "true"})
        assert r.status_code == 200 and r.headers["NGSILD-Results-Count"] == "5"
        ids += [e["id"] for e in r.json()]
    assert ids == [f"urn:ngsi-ld:Streetlight:{n}" for n in range(1, 6)]
    both = (await api.get(f"{E}", params={"id": "urn:ngsi-ld:Streetlight:3"})).json()
    assert set(both[0]) >= {"power", "colour"}
    last = source.requests("GET")[-1].params
    assert (last["offset"], last["orderBy"], last["options"]) == ("0", "id;ascending", "sysAttrs")


async def test_a_q_the_sources_context_cannot_express_goes_with_the_callers(
        api: httpx.AsyncClient, source: MockSource) -> None:
    source.put(lamp(**{"https://example.org/city/lux": prop(7, OLD)}))
    await register(api, registration(source))
    link = f'<{source.endpoint}/context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
    r = await api.get(E, params={"type": "Streetlight", "q": "lux>5", "attrs": "lux"},
                      headers={"Link": link})
    assert r.status_code == 200, r.text
    assert [(e["id"], e["lux"]["value"]) for e in r.json()] == [(LAMP, 7)]
    sent = [s for s in source.requests("GET") if s.path.endswith("/entities")][-1]
    assert sent.params["q"] == "lux>5" and "context.jsonld" in sent.headers["link"]
    r = await api.get(E, params={"type": "Streetlight", "attrs": "lux"},
                      headers={"Link": link})  # no q: the registration's @context
    sent = [s for s in source.requests("GET") if s.path.endswith("/entities")][-1]
    assert "context.jsonld" not in sent.headers["link"]
    assert sent.params["attrs"] == "https://example.org/city/lux"
    assert r.json()[0]["lux"]["value"] == 7


async def test_query_warns_about_a_failing_source(api: httpx.AsyncClient,
                                                  source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(1)})
    await register(api, registration(source))
    source.behaviour = "error"
    r = await api.get(E, params={"type": "Streetlight"})
    assert r.status_code == 200 and [e["id"] for e in r.json()] == [LAMP]
    assert warnings(r)[0].startswith("299 ")


async def test_types_and_attributes_include_the_sources(api: httpx.AsyncClient,
                                                        source: MockSource) -> None:
    await api.post(E, json={"id": "urn:ngsi-ld:Bench:1", "type": "Bench", "seats": prop(3)})
    source.put(lamp(power=prop(3, OLD)))
    await register(api, {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
                         "information": [{"entities": [{"type": "Streetlight"}]}]})
    r = await api.get("/ngsi-ld/v1/types")
    assert sorted(r.json()["typeList"]) == ["Bench", "Streetlight"]
    r = await api.get("/ngsi-ld/v1/types/Streetlight")
    assert r.status_code == 200 and [a["attributeName"] for a in
                                     r.json()["attributeDetails"]] == ["power"]


# --- writes ------------------------------------------------------------------------------


async def test_a_command_goes_to_the_exclusive_source_only(api: httpx.AsyncClient,
                                                           source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10)})
    await register(api, {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
                         "mode": "exclusive", "operations": ["updateOps"],
                         "information": [{"entities": [{"type": "Streetlight", "id": LAMP}],
                                          "propertyNames": ["switch"]}]})
    r = await api.patch(f"{E}/{LAMP}/attrs/switch", json={"value": "off"})
    assert r.status_code == 204, r.text
    [sent] = source.requests("PATCH")
    assert sent.path == f"/ngsi-ld/v1/entities/{LAMP}/attrs/switch"
    assert sent.body == {"type": "Property", "value": "off"}
    local = (await api.get(f"{E}/{LAMP}", params={"local": "true"})).json()
    assert "switch" not in local  # never stored here
    r = await api.patch(f"{E}/{LAMP}/attrs/power", json={"value": 11})
    assert r.status_code == 204 and len(source.requests("PATCH")) == 1


async def test_a_failed_part_of_a_write_gives_207(api: httpx.AsyncClient,
                                                  source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(10)})
    reg_id = await register(api, registration(source, operations=["updateOps"]))
    source.behaviour = "error"
    r = await api.patch(f"{E}/{LAMP}/attrs", json={"power": prop(12)})
    assert r.status_code == 207, r.text
    assert r.json()["updated"] == ["power"]
    [failed] = r.json()["notUpdated"]
    assert failed["attributeName"] == "power" and failed["registrationId"] == reg_id
    assert "the source broke" in failed["reason"]
    assert (await api.get(f"{E}/{LAMP}", params={"local": "true"})).json()["power"][
        "value"] == 12


async def test_a_write_every_part_of_which_failed_is_an_error(api: httpx.AsyncClient,
                                                              source: MockSource) -> None:
    await register(api, {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
                         "mode": "redirect", "operations": ["redirectionOps"],
                         "information": [{"entities": [{"type": "Streetlight"}]}]})
    source.write_status = 404
    r = await api.delete(f"{E}/{LAMP}")
    assert r.status_code == 404, r.text
    source.stop()
    r = await api.patch(f"{E}/{LAMP}", json={"power": prop(1)})
    assert r.status_code == 503 and "context source" in r.json()["detail"]


async def test_redirected_creates_are_not_stored_here(api: httpx.AsyncClient,
                                                      source: MockSource) -> None:
    await register(api, {"type": "ContextSourceRegistration", "endpoint": source.endpoint,
                         "mode": "redirect", "operations": ["redirectionOps"],
                         "information": [{"entities": [{"type": "Streetlight"}]}]})
    r = await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(1)})
    assert r.status_code == 201, r.text
    [sent] = source.requests("POST")
    assert sent.body == {"id": LAMP, "type": "Streetlight", "power": {"type": "Property",
                                                                      "value": 1}}
    r = await api.get(f"{E}/{LAMP}", params={"local": "true"})
    assert r.status_code == 404
    r = await api.post(E, json={"id": "urn:ngsi-ld:Bench:1", "type": "Bench"})
    assert r.status_code == 201 and len(source.requests("POST")) == 1


async def test_batch_parts_that_fail_name_their_registration(api: httpx.AsyncClient,
                                                             source: MockSource) -> None:
    reg_id = await register(api, {
        "type": "ContextSourceRegistration", "endpoint": source.endpoint,
        "operations": ["upsertBatch"],
        "information": [{"entities": [{"type": "Streetlight"}], "propertyNames": ["power"]}]})
    source.behaviour = "error"
    r = await api.post("/ngsi-ld/v1/entityOperations/upsert", json=[
        {"id": LAMP, "type": "Streetlight", "power": prop(1)},
        {"id": "urn:ngsi-ld:Bench:1", "type": "Bench", "seats": prop(2)}])
    assert r.status_code == 207, r.text
    assert r.json()["success"] == ["urn:ngsi-ld:Bench:1"]
    [error] = r.json()["errors"]
    assert error["entityId"] == LAMP and error["error"]["registrationId"] == reg_id
    source.behaviour = "ok"
    r = await api.post("/ngsi-ld/v1/entityOperations/upsert", json=[
        {"id": LAMP, "type": "Streetlight", "power": prop(2)}])
    assert r.status_code in (201, 204), r.text
    assert source.requests("POST")[-1].path == "/ngsi-ld/v1/entityOperations/upsert"


async def test_no_registration_no_request(api: httpx.AsyncClient, source: MockSource) -> None:
    await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(1)})
    await asyncio.gather(api.get(f"{E}/{LAMP}"), api.get(E, params={"type": "Streetlight"}),
                         api.patch(f"{E}/{LAMP}/attrs/power", json={"value": 2}))
    assert not source.requests()


async def test_inclusive_writes_go_to_both_and_a_missing_part_is_no_failure(
        api: httpx.AsyncClient, source: MockSource) -> None:
    await register(api, registration(source, operations=["createEntity", "deleteEntity",
                                                         "deleteAttrs", "deleteBatch"]))
    r = await api.post(E, json={"id": LAMP, "type": "Streetlight", "power": prop(1)})
    assert r.status_code == 201 and r.headers["Location"].endswith(LAMP)
    assert source.requests("POST")[0].body["power"] == {"type": "Property", "value": 1}
    assert (await api.get(f"{E}/{LAMP}", params={"local": "true"})).status_code == 200
    r = await api.delete(f"{E}/{LAMP}/attrs/power")
    assert r.status_code == 204, r.text
    assert source.requests("DELETE")[0].path == f"/ngsi-ld/v1/entities/{LAMP}/attrs/power"
    source.write_status = 404  # the source never had it: fine, this broker had it
    r = await api.delete(f"{E}/{LAMP}")
    assert r.status_code == 204, r.text
    r = await api.delete(f"{E}/{LAMP}")  # nobody has it any more
    assert r.status_code == 404
    source.write_status = 204
    await api.post(E, json={"id": LAMP, "type": "Streetlight"}, params={"local": "true"})
    r = await api.post("/ngsi-ld/v1/entityOperations/delete", json=[LAMP, "urn:ngsi-ld:X:9"])
    assert r.status_code == 204, r.text  # X:9 was not here but the source had it
    assert source.requests("POST")[-1].body == [LAMP, "urn:ngsi-ld:X:9"]
    assert (await api.get(f"{E}/{LAMP}", params={"local": "true"})).status_code == 404
