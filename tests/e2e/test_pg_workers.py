"""Several `urbis serve` workers on one PostgreSQL database answer as one worker does.

Two separate processes (A and B, each on its own port, so a test chooses which one answers)
and one `urbis serve --workers 2`: no lost update, one winner per create, and the caches of
every worker follow what another one changed (contexts, tenants).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_servers import Server, needs_pg, start_server

pytestmark = [pytest.mark.slow, needs_pg]
EX = "https://example.org/"
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture(scope="module")
def pair(pg_database: str) -> Iterator[tuple[Server, Server]]:
    """Two worker processes on one database."""
    a = start_server(pg_database)
    try:
        b = start_server(pg_database)
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def multi(pg_database: str) -> Iterator[Server]:
    """`urbis serve --workers 2` on the same database."""
    server = start_server(pg_database, "--workers", "2")
    yield server
    server.stop()


def uid(kind: str) -> str:
    """A fresh entity id."""
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4().hex[:10]}"


async def patch_from_both(apis: list[str], count: int) -> None:
    """Concurrent PATCHes of different attributes of one entity, spread over `apis`."""
    eid = uid("Counter")
    attrs = {f"a{i}": {"type": "Property", "value": 0} for i in range(count)}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{apis[0]}/entities", json={"id": eid, "type": "Counter", **attrs})
        assert r.status_code == 201, r.text
        jobs = []
        for i in range(count):
            api = apis[i % len(apis)]
            jobs.append(http.patch(f"{api}/entities/{eid}/attrs/a{i}", json={"value": i + 1}))
            jobs.append(http.patch(f"{api}/entities/{eid}",  # merge: a new attribute each
                                   json={f"m{i}": {"type": "Property", "value": i}}))
        answers = await asyncio.gather(*jobs)
        assert [r.status_code for r in answers] == [204] * len(jobs), answers[0].text
        for api in apis:
            final = (await http.get(f"{api}/entities/{eid}")).json()
            assert {f"a{i}": final[f"a{i}"]["value"] for i in range(count)} == \
                {f"a{i}": i + 1 for i in range(count)}
            assert {f"m{i}" for i in range(count)} <= set(final)


async def create_from_both(apis: list[str], ids: int, tries: int) -> None:
    """Each id created `tries` times from every api at once: one 201, every other a 409."""
    targets = [(eid, api) for eid in [uid("Race") for _ in range(ids)] for api in apis * tries]
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(*(http.post(f"{api}/entities", json={"id": eid,
                                                                           "type": "Race"})
                                         for eid, api in targets))
    per_id: dict[str, list[int]] = {}
    for (eid, _), r in zip(targets, answers, strict=True):
        per_id.setdefault(eid, []).append(r.status_code)
        if r.status_code == 409:
            assert r.json()["type"] == ERRORS + "AlreadyExists"
    assert {eid: sorted(codes) for eid, codes in per_id.items()} == \
        {eid: [201] + [409] * (len(apis) * tries - 1) for eid in per_id}
    assert len(per_id) == ids


def eventually(check: Any, timeout: float = 5.0) -> None:
    """Retry `check()` until it is true; invalidations reach other workers asynchronously."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "no change within the deadline"
        time.sleep(0.02)


def uses_context(api: str, url: str, eid: str) -> int:
    """The status of reading an entity with a Link to a context."""
    return httpx.get(f"{api}/entities/{eid}", headers={"Link": LINK.format(url)},
                     timeout=30).status_code


# ---- two processes ----

async def test_concurrent_patches_on_two_workers_lose_no_update(
        pair: tuple[Server, Server]) -> None:
    await patch_from_both([pair[0].api, pair[1].api], 40)


async def test_concurrent_creates_on_two_workers_have_one_winner(
        pair: tuple[Server, Server]) -> None:
    await create_from_both([pair[0].api, pair[1].api], ids=8, tries=3)


def test_a_context_added_or_deleted_on_one_worker_is_seen_by_the_other(
        pair: tuple[Server, Server]) -> None:
    a, b = pair
    added = httpx.post(f"{a.api}/jsonldContexts", json={"@context": {"speed": EX + "speed"}})
    assert added.status_code == 201, added.text
    local_id = added.headers["location"].rsplit("/", 1)[1]
    url = f"{a.api}/jsonldContexts/{local_id}"
    assert httpx.get(f"{b.api}/jsonldContexts/{local_id}").json() == {
        "@context": {"speed": EX + "speed"}}
    eid = uid("Car")
    created = httpx.post(f"{b.api}/entities", json={"id": eid, "type": "Car", "speed": 5},
                         headers={"Link": LINK.format(url)})
    assert created.status_code == 201, created.text
    assert httpx.get(f"{b.api}/entities/{eid}").json()[EX + "speed"]["value"] == 5
    assert uses_context(b.api, url, eid) == 200  # now compiled and cached on B
    assert httpx.delete(f"{a.api}/jsonldContexts/{local_id}").status_code == 204
    assert httpx.get(f"{b.api}/jsonldContexts/{local_id}").status_code == 404
    # B no longer resolves the URL from its cache: it tries to fetch it, and A answers 404.
    eventually(lambda: uses_context(b.api, url, eid) == 503)


def test_a_tenant_created_on_one_worker_is_readable_on_the_other(
        pair: tuple[Server, Server]) -> None:
    a, b = pair
    tenant = {"NGSILD-Tenant": f"t{uuid.uuid4().hex[:8]}"}
    eid = uid("Car")
    missing = httpx.get(f"{b.api}/entities/{eid}", headers=tenant)
    assert missing.status_code == 404 and missing.json()["type"] == ERRORS + "NonexistentTenant"
    created = httpx.post(f"{a.api}/entities", json={"id": eid, "type": "Car"}, headers=tenant)
    assert created.status_code == 201, created.text
    assert httpx.get(f"{b.api}/entities/{eid}", headers=tenant).status_code == 200
    listed = httpx.get(f"{b.api}/entities", params={"type": "Car"}, headers=tenant)
    assert [e["id"] for e in listed.json()] == [eid]


# ---- one server, --workers 2 ----

async def test_workers_option_loses_no_update_and_has_one_winner(multi: Server) -> None:
    await patch_from_both([multi.api], 40)
    await create_from_both([multi.api], ids=8, tries=4)


def test_workers_option_forgets_a_deleted_context_in_every_worker(multi: Server) -> None:
    added = httpx.post(f"{multi.api}/jsonldContexts", json={"@context": {"speed": EX + "speed"}})
    url = f"http://127.0.0.1:{multi.port}{added.headers['location']}"
    eid = uid("Car")
    assert httpx.post(f"{multi.api}/entities", json={"id": eid, "type": "Car", "speed": 1},
                      headers={"Link": LINK.format(url)}).status_code == 201
    for _ in range(20):  # a new connection each: both workers compile and cache it
        assert uses_context(multi.api, url, eid) == 200
    assert httpx.delete(url).status_code == 204
    # Until every worker has forgotten it, some of 20 requests would still succeed.
    eventually(lambda: all(uses_context(multi.api, url, eid) == 503 for _ in range(20)))
