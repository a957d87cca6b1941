"""Notifications survive kill -9, and several PostgreSQL workers deliver each one once.

Real `urbis serve` processes and a real HTTP receiver on 127.0.0.1: every change acknowledged
with a 2xx is notified, even when the server is killed right after answering while the
receiver is down (or stalls), once the server is started again and the receiver is back.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_servers import PG_URL, Server, needs_pg

from notify_receiver import Receiver

pytestmark = pytest.mark.slow
QUICK = {"URBIS_NOTIFY_RETRY_FIRST": "0.2", "URBIS_NOTIFY_RETRY_MAX": "0.5",
         "URBIS_NOTIFY_POLL_INTERVAL": "0.2", "URBIS_NOTIFY_TIMEOUT": "1",
         "URBIS_NOTIFY_LEASE": "3", "URBIS_NOTIFY_MAX_ATTEMPTS": "1000"}


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started by the test retry and poll quickly."""
    for key, value in QUICK.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver, not listening yet."""
    r = Receiver()
    yield r
    r.close()


def subscribe(api: str, kind: str, uri: str) -> None:
    """Subscribe to every change of entities of a type."""
    body = {"type": "Subscription", "entities": [{"type": kind}],
            "notificationTrigger": ["entityCreated", "attributeUpdated"],
            "notification": {"endpoint": {"uri": uri}, "format": "keyValues"}}
    r = httpx.post(f"{api}/subscriptions", json=body, timeout=10)
    assert r.status_code == 201, r.text


def change(api: str, kind: str, n: int) -> None:
    """Create an entity (its number as `n`); asserts the 2xx."""
    r = httpx.post(f"{api}/entities", json={"id": f"urn:ngsi-ld:{kind}:{n}", "type": kind,
                                           "n": {"type": "Property", "value": n}}, timeout=10)
    assert r.status_code == 201, r.text


def numbers(receiver: Receiver) -> Counter[int]:
    """How many times each entity number was notified."""
    return Counter(e["n"] for body in receiver.bodies() for e in body["data"])


def kill(server: Server) -> None:
    """kill -9."""
    server.proc.kill()
    server.proc.wait(10)


@pytest.mark.parametrize("trouble", ["down", "stalled"])
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_kill_9_loses_no_notification(store: str, trouble: str, quick: None,
                                      serve: Callable[..., Server], receiver: Receiver,
                                      tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if store == "postgresql" and not PG_URL:
        pytest.skip("URBIS_TEST_DATABASE_URL is not set")
    url = (f"sqlite:///{tmp_path}/urbis.db" if store == "sqlite"
           else request.getfixturevalue("pg_database"))
    kind = f"Kill{uuid.uuid4().hex[:8]}"
    if trouble == "stalled":
        receiver.delay = 3600  # accepts, never answers: sends are in flight when killed
        receiver.up()
    first = serve(url)
    subscribe(first.api, kind, receiver.url())
    for n in range(30):
        change(first.api, kind, n)
    kill(first)
    receiver.down()
    receiver.received.clear()
    receiver.delay = 0
    receiver.up()
    serve(url)
    receiver.wait_for(lambda r: set(numbers(r)) == set(range(30)), timeout=30)


@needs_pg
def test_two_workers_deliver_each_notification_once(quick: None, serve: Callable[..., Server],
                                                    receiver: Receiver, pg_database: str
                                                    ) -> None:
    receiver.up()
    a, b = serve(pg_database), serve(pg_database)
    kind = f"Pair{uuid.uuid4().hex[:8]}"
    subscribe(a.api, kind, receiver.url())
    time.sleep(0.3)  # b learns of the subscription (LISTEN/NOTIFY)
    for n in range(200):
        change((a, b)[n % 2].api, kind, n)
    receiver.wait_for(lambda r: set(numbers(r)) == set(range(200)), timeout=30)
    time.sleep(1)
    assert max(numbers(receiver).values()) == 1


@needs_pg
def test_a_dead_workers_notifications_are_taken_over(quick: None,
                                                     serve: Callable[..., Server],
                                                     receiver: Receiver, pg_database: str
                                                     ) -> None:
    a, b = serve(pg_database), serve(pg_database)
    kind = f"Over{uuid.uuid4().hex[:8]}"
    subscribe(a.api, kind, receiver.url())
    for n in range(50):
        change(a.api, kind, n)
    kill(a)
    receiver.up()
    receiver.wait_for(lambda r: set(numbers(r)) == set(range(50)), timeout=30)
    assert b.proc.poll() is None
    assert os.environ.get("URBIS_NOTIFY_LEASE") == "3"
