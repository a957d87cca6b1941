"""Bad device input: a clear FIWARE error, counted, kept as a dead letter, nothing written."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iota_helpers import CITY, THERMOMETERS, provision
from prometheus_client import REGISTRY

from urbis.agents.ingest import Uplink
from urbis.agents.iot_agent import IotAgent
from urbis.broker.container import Broker
from urbis.context.errors import ServiceUnavailable

LD = {"NGSILD-Tenant": "city"}
T1 = "urn:ngsi-ld:Thermometer:t1"
GROUP = THERMOMETERS | {"attributes": [
    *THERMOMETERS["attributes"],
    {"object_id": "p", "name": "pressure", "type": "Number"},
    {"name": "ratio", "type": "Number", "expression": "t / p"}]}


def counted(reason: str, agent: str = "http") -> float:
    value = REGISTRY.get_sample_value("urbis_agent_measures_total",
                                      {"agent": agent, "outcome": reason})
    return value or 0.0


@pytest.fixture
async def ready(iota: httpx.AsyncClient, south: httpx.AsyncClient) -> httpx.AsyncClient:
    await provision(iota, [GROUP], [{"device_id": "t1", "apikey": "k1"}])
    r = await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|10|p|2")
    assert r.status_code == 200
    return south


CASES: list[tuple[str, dict[str, str], bytes, int, str, str]] = [
    ("no apikey", {"i": "t1"}, b"t|1", 400, "MANDATORY_PARAMS_NOT_FOUND", ""),
    ("no device", {"k": "k1"}, b"t|1", 400, "MANDATORY_PARAMS_NOT_FOUND", ""),
    ("key without value", {"k": "k1", "i": "t1"}, b"t|1|p", 400, "BAD_REQUEST", "syntax"),
    ("empty payload", {"k": "k1", "i": "t1"}, b"", 400, "BAD_REQUEST", "syntax"),
    ("not utf-8", {"k": "k1", "i": "t1"}, b"t|\xff\xfe", 400, "BAD_REQUEST", "encoding"),
    ("not a number", {"k": "k1", "i": "t1"}, b"t|20|p|high", 400, "BAD_REQUEST",
     "invalid_value"),
    ("division by zero", {"k": "k1", "i": "t1"}, b"t|20|p|0", 400, "BAD_REQUEST", "expression"),
    ("bad time", {"k": "k1", "i": "t1", "t": "yesterday"}, b"t|20", 400, "BAD_REQUEST",
     "invalid_time"),
    ("bad measure name", {"k": "k1", "i": "t1"}, b"t|20|a b|1", 400, "BAD_REQUEST",
     "invalid_value"),
    ("geometry out of range", {"k": "k1", "i": "t1"}, b"t|20|location|x", 400, "BAD_REQUEST",
     "invalid_value"),
]


@pytest.mark.parametrize(("what", "params", "body", "status", "name", "reason"), CASES,
                         ids=[c[0] for c in CASES])
async def test_rejected_messages_change_nothing(ready: httpx.AsyncClient,
                                                iota: httpx.AsyncClient,
                                                client: httpx.AsyncClient, what: str,
                                                params: dict[str, str], body: bytes,
                                                status: int, name: str, reason: str) -> None:
    before = counted(reason) if reason else 0.0
    r = await ready.post("/iot/d", params=params, content=body)
    assert r.status_code == status, (what, r.text)
    assert r.json()["name"] == name and r.json()["message"]
    e = (await client.get(f"/ngsi-ld/v1/entities/{T1}", headers=LD)).json()
    assert e["temperature"]["value"] == 10 and e["pressure"]["value"] == 2
    assert "location" in e and e["location"]["value"]["coordinates"] == [-3.7, 40.4]
    if reason:
        assert r.json()["reason"] == reason
        assert counted(reason) == before + 1
        letters = (await iota.get("/iot/deadletter", headers=CITY)).json()["deadletters"]
        assert letters[0]["reason"] == reason and letters[0]["device_id"] == "t1"
        assert letters[0]["payload"] == body.decode("utf-8", "replace")[:512]
    r = await ready.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|11|p|2")
    assert r.status_code == 200  # the agent goes on


async def test_json_errors(ready: httpx.AsyncClient) -> None:
    for body, reason in ((b"{bad", "syntax"), (b"[1, 2]", "syntax"), (b"42", "syntax"),
                         (b'{"TimeInstant": 5, "t": 1}', "invalid_time")):
        r = await ready.post("/iot/json", params={"k": "k1", "i": "t1"}, content=body)
        assert r.status_code == 400 and r.json()["reason"] == reason, body
    r = await ready.post("/iot/json", params={"k": "k1", "i": "t1"},
                         content=b'{"t": 1, "x": "' + b"a" * 300_000 + b'"}')
    assert r.status_code == 413 and r.json()["name"] == "REQUEST_TOO_LARGE"
    r = await ready.post("/iot/json", params={"k": "k1", "i": "t1"}, content=b'{"t": null}')
    assert r.status_code == 200  # a null measure is not written (FIWARE does the same)


async def test_store_failures_answer_503(ready: httpx.AsyncClient, iota: httpx.AsyncClient,
                                         broker: Broker, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    async def down(*args: Any) -> Any:
        raise ServiceUnavailable("the database is unavailable")

    monkeypatch.setattr(broker.entities, "run_batch", down)
    r = await ready.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|30")
    assert r.status_code == 503 and r.json()["name"] == "SERVICE_UNAVAILABLE"
    assert r.json()["reason"] == "store_error"
    monkeypatch.undo()
    letters = (await iota.get("/iot/deadletter", params={"reason": "store_error"},
                              headers=CITY)).json()
    assert letters["count"] == 1 and letters["deadletters"][0]["payload"] == "t|30"


async def test_a_full_queue_answers_503(ready: httpx.AsyncClient, agent: IotAgent,
                                        broker: Broker, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    gate = asyncio.Event()
    run_batch = broker.entities.run_batch

    async def slow(*args: Any) -> Any:
        await gate.wait()
        return await run_batch(*args)

    monkeypatch.setattr(broker.entities, "run_batch", slow)
    agent.ingest.queue.queue_size = 2
    first = asyncio.create_task(ready.post("/iot/d", params={"k": "k1", "i": "t1"},
                                           content="t|1"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(ready.post("/iot/d", params={"k": "k1", "i": "t1"},
                                            content="t|2"))
    await asyncio.sleep(0.05)
    assert not await agent.ingest.post(Uplink("k1", "t1", "t|3", format="ultralight"))
    gate.set()
    assert (await first).status_code == 200 and (await second).status_code == 200


async def test_dead_letter_summary_and_filters(ready: httpx.AsyncClient,
                                               iota: httpx.AsyncClient) -> None:
    for body in ("t|x", "t|y", "t"):
        await ready.post("/iot/d", params={"k": "k1", "i": "t1"}, content=body)
    await ready.post("/iot/d", params={"k": "k1", "i": "t2"}, content="t|z")  # autoprovisioned
    r = await iota.get("/iot/deadletter", params={"summary": "true"}, headers=CITY)
    assert r.json()["summary"][0] == {"service": "city", "apikey": "k1", "device_id": "t1",
                                      "reason": "invalid_value", "count": 2}
    assert r.json()["count"] == 3
    r = await iota.get("/iot/deadletter", params={"device_id": "t2", "limit": 5}, headers=CITY)
    assert [x["device_id"] for x in r.json()["deadletters"]] == ["t2"]
    r = await iota.get("/iot/deadletter", params={"limit": "x"}, headers=CITY)
    assert r.status_code == 400


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
_UL = st.lists(st.one_of(st.sampled_from(["t", "p", "s", "h", "location", "#", "|", ""]), _TEXT),
               max_size=12).map("|".join)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(_UL, st.binary(max_size=200).map(lambda b: b.hex()), _TEXT))
async def test_no_ultralight_payload_breaks_the_agent(ready: httpx.AsyncClient,
                                                      payload: str) -> None:
    r = await ready.post("/iot/d", params={"k": "k1", "i": "t1"}, content=payload.encode())
    assert r.status_code in (200, 400), r.text
    assert set(r.json()) >= {"name", "message"} if r.status_code == 400 else r.text == ""


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) |
                     st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
                     lambda inner: st.lists(inner, max_size=4) |
                     st.dictionaries(st.sampled_from(["t", "p", "s", "TimeInstant", "x", ""]),
                                     inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_JSON)
async def test_no_json_payload_breaks_the_agent(ready: httpx.AsyncClient, body: Any) -> None:
    r = await ready.post("/iot/json", params={"k": "k1", "i": "t1"}, json=body)
    assert r.status_code in (200, 400), r.text


async def test_a_message_the_store_refuses_does_not_sink_its_batch(
        ready: httpx.AsyncClient, iota: httpx.AsyncClient, broker: Broker,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await provision(iota, devices=[{"device_id": f"d{n}", "apikey": "k1"} for n in range(20)])
    run_batch = broker.entities.run_batch
    sizes: list[int] = []

    async def picky(actor: Any, mutations: Any, errors: Any) -> Any:
        sizes.append(len(mutations))
        if any(m.entity_id.endswith(":d7") for m in mutations):
            raise ValueError("the store cannot hold this value")
        return await run_batch(actor, mutations, errors)

    monkeypatch.setattr(broker.entities, "run_batch", picky)
    replies = await asyncio.gather(*[
        ready.post("/iot/d", params={"k": "k1", "i": f"d{n}"}, content="t|1") for n in range(20)])
    codes = [r.status_code for r in replies]
    assert codes[7] == 503 and codes.count(200) == 19
    assert max(sizes) > 1  # they did share a batch at first


async def test_a_registry_outage_is_a_503_not_a_crash(iota: httpx.AsyncClient,
                                                      south: httpx.AsyncClient,
                                                      agent: IotAgent,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: Any) -> Any:
        raise ServiceUnavailable("the database is unavailable")

    monkeypatch.setattr(agent.cache.store, "find_device", down)
    r = await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|1")
    assert r.status_code == 503 and r.json()["reason"] == "store_error"
    assert r.headers["retry-after"] == "1"
    assert not await agent.ingest.post(Uplink("k1", "t1", "t|1", format="ultralight"))
