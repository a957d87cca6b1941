"""/ngsi-ld/v1/csourceSubscriptions: CRUD, and notifications of registration changes sent to a
real local HTTP receiver (ETSI GS CIM 009 V1.8.1 clause 5.11), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from notify_receiver import Receiver
from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.context.actor import Actor
from urbis.settings import Settings

CS = "/csourceSubscriptions"
R = "/csourceRegistrations"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
EX = "https://example.org/city/"
USER_CONTEXT = {"ex": EX, "Car": "ex:Car", "Bus": "ex:Bus", "speed": "ex:speed",
                "provider": "ex:provider"}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Settings with quick retries."""
    return dataclasses.replace(settings, notify_retry_first=0.05, notify_retry_max=0.1,
                               notify_max_attempts=2, notify_poll_interval=0.05,
                               notify_timeout=2.0)


@pytest.fixture
async def nbroker(fast: Settings) -> AsyncIterator[Broker]:
    """A broker whose notifiers run."""
    b = await build_broker(fast)
    await b.notifier.start()
    assert b.csource_notifier is not None
    await b.csource_notifier.start()
    yield b
    await b.close()


@pytest.fixture
async def api(fast: Settings, nbroker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on that broker."""
    app = create_app(fast, broker=nbroker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test/ngsi-ld/v1"
                                 ) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that is up."""
    r = Receiver().up()
    yield r
    r.close()


def registration(n: int, kind: str = "Car", **members: Any) -> dict[str, Any]:
    """A registration of `kind` entities' speed."""
    return {"id": f"urn:ngsi-ld:ContextSourceRegistration:{n}",
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": kind}], "propertyNames": ["speed"]}],
            "endpoint": f"http://source-{n}.example.org", **members}


def csub(uri: str, **members: Any) -> dict[str, Any]:
    """A subscription to registrations of Car entities."""
    return {"type": "Subscription", "entities": [{"type": "Car"}],
            "notification": {"endpoint": {"uri": uri}}, **members}


async def post(api: httpx.AsyncClient, path: str, body: Any, **headers: str) -> str:
    """POST and return the new resource's id."""
    r = await api.post(path, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["Location"].rsplit("/", 1)[1])


def problem(r: httpx.Response, status: int, kind: str) -> None:
    """Assert a problem+json response of a type."""
    assert r.status_code == status, r.text
    assert r.json()["type"] == ERR + kind


async def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll an async check until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def reasons(receiver: Receiver) -> list[tuple[str, list[str]]]:
    """(triggerReason, registration ids) of each notification received, in order."""
    return [(b["triggerReason"], [d["id"] for d in b["data"]]) for b in receiver.bodies()]


async def test_crud(api: httpx.AsyncClient) -> None:
    sub_id = await post(api, CS, csub("http://localhost:9/n", id="urn:ngsi-ld:Subscription:c1",
                                      q='provider=="EMT"'))
    assert sub_id == "urn:ngsi-ld:Subscription:c1"
    r = await api.get(f"{CS}/{sub_id}")
    assert r.status_code == 200
    assert r.json() == {"id": sub_id, "type": "Subscription", "entities": [{"type": "Car"}],
                        "q": 'provider=="EMT"', "status": "active",
                        "notification": {"endpoint": {"uri": "http://localhost:9/n"}}}
    generated = await post(api, f"{CS}/", csub("http://localhost:9/n"))
    assert generated.startswith("urn:ngsi-ld:Subscription:")
    r = await api.get(CS, params={"count": "true", "limit": "1"})
    assert [s["id"] for s in r.json()] == [sub_id] and r.headers["NGSILD-Results-Count"] == "2"
    assert (await api.get("/subscriptions")).json() == []  # entity subscriptions are apart
    assert (await api.patch(f"{CS}/{sub_id}", json={"isActive": False})).status_code == 204
    assert (await api.get(f"{CS}/{sub_id}")).json()["status"] == "paused"
    assert (await api.delete(f"{CS}/{sub_id}")).status_code == 204
    problem(await api.get(f"{CS}/{sub_id}"), 404, "ResourceNotFound")
    problem(await api.delete(f"{CS}/{sub_id}"), 404, "ResourceNotFound")
    problem(await api.post(CS, json=csub("http://x/n", id=generated)), 409, "AlreadyExists")


async def test_bad_subscriptions(api: httpx.AsyncClient) -> None:
    problem(await api.post(CS, json=csub("http://x/n", timeInterval=10)), 422,
            "OperationNotSupported")
    problem(await api.post(CS, json={**csub("http://x/n"), "notification": {
        "endpoint": {"uri": "http://x/n", "accept": "application/geo+json"}}}), 400,
        "BadRequestData")
    for body in ({"type": "Subscription", "entities": [{"type": "Car"}]},
                 csub("ftp://x/n"), {**csub("http://x/n"), "type": "Other"},
                 {**csub("http://x/n"), "entities": []}, csub("http://x/n", q="a>"), [1]):
        problem(await api.post(CS, json=body), 400, "BadRequestData")
    sub_id = await post(api, CS, csub("http://x/n"))
    problem(await api.patch(f"{CS}/{sub_id}", json={"timeInterval": 5}), 422,
            "OperationNotSupported")
    problem(await api.patch(f"{CS}/{sub_id}", json={"notification": None}), 400,
            "BadRequestData")
    assert [s["id"] for s in (await api.get(CS)).json()] == [sub_id]


async def test_registration_changes_are_notified(api: httpx.AsyncClient, nbroker: Broker,
                                                 receiver: Receiver) -> None:
    url = (await nbroker.contexts.add_hosted(Actor(), {"@context": USER_CONTEXT})).url
    link = {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; '
                    'type="application/ld+json"'}
    await post(api, R, registration(1, provider="EMT"), **link)
    sub_id = await post(api, CS, csub(receiver.url()), **link)
    await receiver.until(lambda r: len(r.received) == 1)  # the initial notification
    first = receiver.received[0]
    assert first.body["type"] == "Notification" and first.body["subscriptionId"] == sub_id
    assert first.body["triggerReason"] == "newlyMatching"
    data = first.body["data"][0]
    assert data["information"] == [{"entities": [{"type": "Car"}],
                                    "propertyNames": ["speed"]}]
    assert data["provider"] == "EMT" and data["type"] == "ContextSourceRegistration"
    assert url in first.headers["link"] and first.headers["content-type"] == "application/json"
    await post(api, R, registration(2), **link)
    await post(api, R, registration(3, kind="Bus"), **link)  # not a Car: not notified
    reg2 = f"{R}/urn:ngsi-ld:ContextSourceRegistration:2"
    assert (await api.patch(reg2, json={"description": "d"}, headers=link)).status_code == 204
    assert (await api.patch(reg2, json={"information": [{"entities": [{"type": "Bus"}]}]},
                            headers=link)).status_code == 204
    assert (await api.delete(f"{R}/urn:ngsi-ld:ContextSourceRegistration:1")).status_code == 204
    await receiver.until(lambda r: len(r.received) == 5)
    await asyncio.sleep(0.2)
    prefix = "urn:ngsi-ld:ContextSourceRegistration:"
    assert reasons(receiver) == [
        ("newlyMatching", [prefix + "1"]), ("newlyMatching", [prefix + "2"]),
        ("updated", [prefix + "2"]), ("noLongerMatching", [prefix + "2"]),
        ("noLongerMatching", [prefix + "1"])]
    assert receiver.bodies()[2]["data"][0]["description"] == "d"

    async def counted() -> dict[str, Any] | None:
        sub = (await api.get(f"{CS}/{sub_id}")).json()
        return sub if sub["notification"].get("timesSent") == 5 else None

    sub = await until(counted)
    assert sub is not None and sub["notification"]["status"] == "ok"
    assert "lastSuccess" in sub["notification"]


async def test_filters_tenant_and_pause(api: httpx.AsyncClient, receiver: Receiver) -> None:
    city = {"NGSILD-Tenant": "city"}
    await post(api, CS, csub(receiver.url("/attrs"), entities=None,
                             watchedAttributes=["brand"]), **city)
    await post(api, CS, csub(receiver.url("/q"), q='provider=="EMT"'), **city)
    paused = await post(api, CS, csub(receiver.url("/paused"), isActive=False), **city)
    await post(api, CS, csub(receiver.url("/default")))  # another tenant
    await post(api, R, registration(1, provider="EMT"), **city)
    await post(api, R, registration(2, provider="ALSA", information=[
        {"propertyNames": ["brand"]}]), **city)
    await receiver.until(lambda r: len(r.bodies("/attrs")) == 1 and len(r.bodies("/q")) == 1)
    await asyncio.sleep(0.3)
    ids = "urn:ngsi-ld:ContextSourceRegistration:"
    assert [b["data"][0]["id"] for b in receiver.bodies("/attrs")] == [ids + "2"]
    assert [b["data"][0]["id"] for b in receiver.bodies("/q")] == [ids + "1"]
    assert receiver.bodies("/paused") == [] and receiver.bodies("/default") == []
    assert all(r.headers["ngsild-tenant"] == "city" for r in receiver.received)
    assert (await api.patch(f"{CS}/{paused}", json={"isActive": True},
                            headers=city)).status_code == 204
    await post(api, R, registration(3), **city)
    await receiver.until(lambda r: len(r.bodies("/paused")) == 1)


async def test_failed_notifications_are_counted(api: httpx.AsyncClient) -> None:
    down = Receiver()  # never up: connections are refused
    try:
        sub_id = await post(api, CS, csub(down.url()))
        await post(api, R, registration(1))

        async def failed() -> dict[str, Any] | None:
            sub = (await api.get(f"{CS}/{sub_id}")).json()
            return sub if sub["notification"].get("status") == "failed" else None

        sub = await until(failed)
        assert sub is not None, "the failure was not recorded"
        note = sub["notification"]
        assert note["timesSent"] == 2 and note["timesFailed"] == 2
        assert "lastFailure" in note and "lastSuccess" not in note
    finally:
        down.close()
