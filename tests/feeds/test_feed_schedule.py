"""Scheduled imports: a failing feed never stops the others, status for operators (service,
GET /admin/feeds, POST .../run), one scheduling worker, and `urbis serve` with feeds_dir."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from feedkit import DATA, EXAMPLES, example
from starlette.testclient import TestClient

from urbis.agents.feed_definition import load_folder
from urbis.agents.feed_schedule import FeedService, build_feed_service
from urbis.api.app import create_app
from urbis.broker.container import Broker
from urbis.context.actor import OPERATOR, Actor
from urbis.context.errors import Forbidden, ResourceNotFound
from urbis.observability.metrics import FEED_RUNS, render
from urbis.security.policy import public_operations
from urbis.settings import Settings

ADMIN = Actor(principal="test")


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for a condition of the running service."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _by_name(statuses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s.get("name") or s["file"]: s for s in statuses}


def test_every_operation_declares_a_permission() -> None:
    names = public_operations(FeedService.__new__(FeedService))
    assert {"list", "get", "run", "run_definition", "check", "start", "close"} <= set(names)
    for name in names:
        member = inspect.getattr_static(FeedService, name)
        assert hasattr(member, "__permission__"), name


async def test_a_failing_feed_never_stops_the_others(broker: Broker, tmp_path: Path) -> None:
    source = tmp_path / "parks.csv"
    shutil.copy(DATA / "bath_carparks_sample.csv", source)
    good = example("bath-parking", source=str(source), every=1.0)
    bad = example("bath-parking", name="gone", source=str(tmp_path / "gone.csv"), every=1.0)
    manual = example("caltrain-gtfs", every=None)
    failures = FEED_RUNS.labels("gone", "failed")._value.get()
    service = FeedService(broker.batch, broker.contexts, [bad, good, manual],
                          {"x.toml": "x.toml: unknown keys: colour"})
    await service.start()
    try:
        await until(lambda: service.states["gone"].failures >= 2 and
                    service.states["bath-parking"].last is not None and
                    service.states["bath-parking"].last.outcome == "unchanged")
        status = _by_name(await service.list(ADMIN))
    finally:
        await service.close()
    assert status["bath-parking"]["status"] == "unchanged"
    assert status["bath-parking"]["lastSuccessAt"] and "nextRunAt" in status["bath-parking"]
    assert status["bath-parking"]["consecutiveFailures"] == 0
    assert status["gone"]["status"] == "failed"
    assert "cannot read" in status["gone"]["lastRun"]["error"]
    assert status["gone"]["consecutiveFailures"] >= 2
    assert status["caltrain-gtfs"]["status"] == "on request"  # no interval: not scheduled
    assert status["x.toml"] == {"file": "x.toml", "status": "invalid",
                                "error": "x.toml: unknown keys: colour"}
    assert FEED_RUNS.labels("gone", "failed")._value.get() >= failures + 2
    text = render()[0].decode()
    assert 'urbis_feed_runs_total{feed="bath-parking",outcome="ok"}' in text
    assert 'urbis_feed_last_success_timestamp_seconds{feed="bath-parking"}' in text


async def test_status_and_runs_by_tenant(broker: Broker) -> None:
    city = example("bath-parking", tenant="city")
    other = example("openaq-air-quality", tenant="air")
    service = FeedService(broker.batch, broker.contexts, [city, other], {"bad.toml": "nope"})
    city_operator = Actor(tenant="", principal="op", roles=frozenset({OPERATOR}),
                          tenants=frozenset({"city"}))
    assert [s["name"] for s in await service.list(city_operator)] == ["bath-parking"]
    assert len(await service.list(ADMIN)) == 3  # both feeds and the refused file
    report = await service.run(city_operator, "bath-parking")
    assert (report.outcome, report.written) == ("ok", 21)
    status = await service.get(city_operator, "bath-parking")
    assert status["lastRun"]["written"] == 21 and status["status"] == "ok"
    with pytest.raises(Forbidden):
        await service.run(city_operator, "openaq-air-quality")
    with pytest.raises(Forbidden):
        await service.get(city_operator, "openaq-air-quality")
    with pytest.raises(ResourceNotFound):
        await service.run(ADMIN, "nothing")
    analyst = Actor(roles=frozenset({"analyst"}))
    with pytest.raises(Forbidden):
        await service.list(analyst)


async def test_admin_api(settings: Settings, broker: Broker) -> None:
    definitions, _ = load_folder(EXAMPLES)
    app = create_app(settings, broker=broker)
    app.state.feeds = FeedService(broker.batch, broker.contexts, definitions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        listing = (await c.get("/admin/feeds")).json()
        assert [f["name"] for f in listing] == ["bath-parking", "caltrain-gtfs",
                                                "openaq-air-quality"]
        assert listing[0]["status"] == "never run" and listing[0]["everySeconds"] == 300
        r = await c.post("/admin/feeds/caltrain-gtfs/run")
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "caltrain-gtfs" and r.json()["written"] == 34
        one = (await c.get("/admin/feeds/caltrain-gtfs")).json()
        assert one["status"] == "ok" and one["lastRun"]["outcome"] == "ok"
        r = await c.get("/admin/feeds/nothing")
        assert r.status_code == 404 and r.json()["type"].endswith("ResourceNotFound")
        assert (await c.post("/admin/feeds/nothing/run")).status_code == 404


async def test_only_one_worker_schedules(broker: Broker, tmp_path: Path) -> None:
    definition = example("bath-parking", every=1.0)
    first = FeedService(broker.batch, broker.contexts, [definition], state_dir=tmp_path)
    second = FeedService(broker.batch, broker.contexts, [definition], state_dir=tmp_path)
    await first.start()
    await second.start()
    try:
        await until(lambda: first.states["bath-parking"].last is not None)
        await asyncio.sleep(0.3)
        assert second.states["bath-parking"].last is None  # it never ran here
        shared = _by_name(await second.list(ADMIN))["bath-parking"]
        assert shared["lastRun"]["written"] == 21  # published by the scheduling worker
    finally:
        await first.close()
        await second.close()


def test_serve_runs_the_feeds_of_feeds_dir(settings: Settings, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the workers' lock and status
    folder = tmp_path / "feeds"
    folder.mkdir()
    for name in ("bath-parking", "caltrain-gtfs"):
        text = (EXAMPLES / f"{name}.toml").read_text()
        (folder / f"{name}.toml").write_text(text.replace("../../tests/fixtures/datasets",
                                                          str(DATA)))
    (folder / "broken.toml").write_text("name = [")
    configured = dataclasses.replace(settings, feeds_dir=str(folder)).validate()
    with TestClient(create_app(configured)) as c:
        deadline = time.monotonic() + 20
        while True:
            feeds = _by_name(c.get("/admin/feeds").json())
            if all(feeds[n].get("status") == "ok" for n in ("bath-parking", "caltrain-gtfs")):
                break
            assert time.monotonic() < deadline, feeds
            time.sleep(0.1)
        assert feeds[str(folder / "broken.toml")]["status"] == "invalid"
        assert any(p.name.startswith("urbis-feeds-") for p in tmp_path.iterdir())
        r = c.get("/ngsi-ld/v1/entities", params={"type": "https://smartdatamodels.org/"
                                                          "dataModel.Parking/OffStreetParking"})
        assert r.status_code == 200 and len(r.json()) == 7


async def test_build_without_feeds_dir(settings: Settings, broker: Broker) -> None:
    service = build_feed_service(settings, broker)
    assert service.states == {} and service.state_dir is None
    await service.start()
    await service.close()
