"""A real server whose PostgreSQL connections die: 503 meanwhile, then it recovers by itself.

The database is cut off without disturbing other users of the test server: by terminating
the backends of this session's database (pg_terminate_backend), or by a TCP proxy between the
urbis process and PostgreSQL that drops every connection and refuses new ones, as a restart
of the database server does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
from e2e_servers import PG_URL, Server, TcpProxy, needs_pg

pytestmark = [pytest.mark.slow, needs_pg]
EX = "https://example.org/"
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Retry `check()` until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "no recovery within the deadline"
        time.sleep(0.1)


def is_problem(response: httpx.Response, status: int, kind: str) -> bool:
    """Whether a response is the NGSI-LD problem+json of that status and type."""
    return (response.status_code == status
            and response.headers["content-type"].startswith("application/problem+json")
            and response.json()["type"] == ERRORS + kind)


async def _terminate_backends(database: str) -> int:
    conn = await asyncpg.connect(PG_URL)
    try:
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", database))
    finally:
        await conn.close()


def terminate_backends(database: str) -> int:
    """Kill every connection to a database; how many there were."""
    return asyncio.run(_terminate_backends(database))


def add_context(server: Server) -> str:
    """Add a hosted context on a server; the URL it is served at."""
    added = httpx.post(f"{server.api}/jsonldContexts", json={"@context": {"speed": EX + "speed"}})
    assert added.status_code == 201, added.text
    return f"http://127.0.0.1:{server.port}{added.headers['location']}"


def read_with(server: Server, eid: str, url: str) -> httpx.Response:
    """Read an entity with a Link to a context."""
    return httpx.get(f"{server.api}/entities/{eid}", headers={"Link": LINK.format(url)},
                     timeout=30)


def test_killed_connections_cost_at_most_a_503_and_heal(
        serve: Callable[..., Server], pg_database: str) -> None:
    a, b = serve(pg_database), serve(pg_database)
    eid = f"urn:ngsi-ld:Counter:{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{a.api}/entities", json={"id": eid, "type": "Counter", "n": 0}
                      ).status_code == 201
    database = urlparse(pg_database).path[1:]
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            terminate_backends(database)
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        answers: list[httpx.Response] = []
        for i in range(30):
            server = (a, b)[i % 2]
            answers.append(httpx.get(f"{server.api}/entities/{eid}", timeout=30))
            answers.append(httpx.patch(f"{server.api}/entities/{eid}/attrs/n",
                                       json={"value": i}, timeout=30))
    finally:
        stop.set()
        thread.join()
    for r in answers:
        assert r.status_code in (200, 204) or is_problem(r, 503, "ServiceUnavailable"), r.text
    for server in (a, b):  # a dead pooled connection is replaced without failing a request
        assert [httpx.get(f"{server.api}/entities/{eid}").status_code for _ in range(5)] == \
            [200] * 5
    # The LISTEN connections came back too: B forgets a context A deletes.
    url = add_context(a)
    assert read_with(b, eid, url).status_code == 200
    assert httpx.delete(url).status_code == 204
    eventually(lambda: is_problem(read_with(b, eid, url), 503, "LdContextNotAvailable"))


def test_a_database_outage_is_503_and_the_server_recovers_by_itself(
        serve: Callable[..., Server], pg_database: str, pg_proxy: TcpProxy) -> None:
    a = serve(pg_proxy.url(pg_database))  # through the proxy
    b = serve(pg_database)  # another worker, never cut off
    eid = f"urn:ngsi-ld:Car:{uuid.uuid4().hex[:8]}"
    url = add_context(b)
    created = httpx.post(f"{a.api}/entities", json={"id": eid, "type": "Car", "speed": 1},
                         headers={"Link": LINK.format(url)})
    assert created.status_code == 201, created.text
    assert read_with(a, eid, url).status_code == 200  # the context is cached on A now

    pg_proxy.down()
    outage: list[Any] = [
        httpx.get(f"{a.api}/entities/{eid}", timeout=30),
        httpx.post(f"{a.api}/entities", json={"id": eid + "x", "type": "Car"}, timeout=30),
        httpx.get(f"{a.api}/entities", params={"type": "Car"}, timeout=30),
    ]
    for r in outage:
        assert is_problem(r, 503, "ServiceUnavailable"), r.text
    assert httpx.get(f"http://127.0.0.1:{a.port}/health").status_code == 200
    # Meanwhile B deletes the context; A cannot hear of it.
    assert httpx.delete(url).status_code == 204

    pg_proxy.up()
    eventually(lambda: httpx.get(f"{a.api}/entities/{eid}").status_code == 200)
    created = httpx.post(f"{a.api}/entities", json={"id": eid + "y", "type": "Car"})
    assert created.status_code == 201, created.text
    # Once listening again, A drops every cache, since it may have missed invalidations.
    eventually(lambda: is_problem(read_with(a, eid, url), 503, "LdContextNotAvailable"))
