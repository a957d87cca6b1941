"""Imports of real data (Bath car parks, OpenAQ, Caltrain GTFS) into every store backend, and
what happens to bad records: refused with their reason, the others written, none in part."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import httpx
import pytest
from feedkit import AIR, DATA, MOBILITY, PARKING, SHARED, count, example, read

from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_schedule import FeedService
from urbis.agents.feeds import run_feed
from urbis.broker.container import Broker
from urbis.context.actor import Actor
from urbis.observability.metrics import FEED_ENTITIES, FEED_RUNS

ADMIN = Actor(principal="test")


async def test_bath_car_parks(feeds: FeedService, client: httpx.AsyncClient) -> None:
    report = await feeds.run_definition(ADMIN, example("bath-parking"))
    assert (report.outcome, report.records, report.written, report.created) == ("ok", 21, 21, 7)
    assert report.rejected == 0 and report.error is None and report.validators is not None
    assert await count(client, "OffStreetParking", PARKING) == 7
    podium = await read(client, "urn:ngsi-ld:OffStreetParking:bath:Podium-CP", PARKING)
    # the latest of its three readings (01:13:20 British Summer Time) is the current state
    assert podium["occupiedSpotNumber"]["value"] == 84
    assert podium["occupiedSpotNumber"]["observedAt"] == "2016-09-30T23:13:20Z"
    assert podium["availableSpotNumber"]["value"] == 521 - 84
    assert podium["occupancy"]["unitCode"] == "C62"
    assert podium["dataProvider"]["value"] == "Bath & North East Somerset Council"


async def test_history_of_every_record_is_kept(feeds: FeedService, broker: Broker,
                                               client: httpx.AsyncClient) -> None:
    if broker.temporal is None:
        pytest.skip("no history in this store")
    await feeds.run_definition(ADMIN, example("bath-parking"))
    headers = {"Link": f'<{PARKING}>; rel="http://www.w3.org/ns/json-ld#context"'}
    r = await client.get("/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:OffStreetParking:bath:"
                         "Podium-CP", params={"attrs": "occupiedSpotNumber"}, headers=headers)
    assert r.status_code == 200, r.text
    assert len(r.json()["occupiedSpotNumber"]) == 3  # the sample's 3 readings of Podium CP


async def test_openaq_air_quality(feeds: FeedService, client: httpx.AsyncClient) -> None:
    report = await feeds.run_definition(ADMIN, example("openaq-air-quality", tenant="air"))
    assert (report.outcome, report.written, report.created) == ("ok", 20, 3)
    assert await count(client, "AirQualityObserved", AIR, tenant="air") == 3
    antwerp = await read(client, "urn:ngsi-ld:AirQualityObserved:openaq:BETR801", AIR, "air")
    # each row updates its own pollutant; both end at their latest hour
    assert antwerp["no2"]["value"] == 41 and antwerp["no2"]["unitCode"] == "GQ"
    assert antwerp["no2"]["observedAt"] == "2019-06-17T08:00:00Z"
    assert antwerp["pm25"]["value"] == 18 and antwerp["pm25"]["observedAt"] == \
        "2019-06-18T06:00:00Z"
    assert antwerp["refPointOfInterest"]["object"] == \
        "urn:ngsi-ld:PointOfInterest:openaq:BETR801"
    london = await read(client, "urn:ngsi-ld:AirQualityObserved:openaq:London-Westminster",
                        AIR, "air")
    assert london["areaServed"]["value"] == "London"
    paris = await read(client, "urn:ngsi-ld:AirQualityObserved:openaq:FR04014", AIR, "air")
    assert "pm25" not in paris and paris["no2"]["value"] == 20


async def test_caltrain_gtfs_folder_and_zip(feeds: FeedService, client: httpx.AsyncClient,
                                            tmp_path: Path) -> None:
    report = await feeds.run_definition(ADMIN, example("caltrain-gtfs"))
    assert (report.outcome, report.written, report.rejected) == ("ok", 34, 0)
    assert await count(client, "GtfsStop", MOBILITY) == 8
    assert await count(client, "GtfsTrip", MOBILITY) == 5
    stop = await read(client, "urn:ngsi-ld:GtfsStop:caltrain:70011", MOBILITY)
    assert stop["hasParentStation"]["object"] == "urn:ngsi-ld:GtfsStation:caltrain:ctsf"
    assert stop["location"]["value"]["coordinates"] == [-122.394992, 37.77639]
    archive = shutil.make_archive(str(tmp_path / "caltrain"), "zip",
                                  DATA / "gtfs-caltrain-sample")
    zipped = await feeds.run_definition(ADMIN, example("caltrain-gtfs", source=archive,
                                                       stop_times=True))
    assert (zipped.outcome, zipped.written, zipped.created) == ("ok", 41, 7)  # + stop times


@pytest.mark.skipif(not (SHARED / "gtfs").is_dir(), reason="shared datasets not present")
async def test_full_cairns_feed(feeds: FeedService, client: httpx.AsyncClient) -> None:
    report = await feeds.run_definition(ADMIN, example(
        "caltrain-gtfs", name="cairns", prefix="cairns",
        source=str(SHARED / "gtfs" / "cairns_gtfs_2014.zip")))
    assert report.outcome == "ok", report.to_json()
    assert report.written > 1000
    assert await count(client, "GtfsRoute", MOBILITY) > 10


async def test_unchanged_source_is_skipped(broker: Broker, tmp_path: Path) -> None:
    source = tmp_path / "parks.csv"
    shutil.copy(DATA / "bath_carparks_sample.csv", source)
    definition = example("bath-parking", source=str(source))
    broker.contexts.preload_bundled()
    tm = await broker.contexts.term_map(definition.context)
    actor = Actor(principal="feed:test")
    first = await run_feed(definition, broker.batch, actor, tm)
    again = await run_feed(definition, broker.batch, actor, tm, first.validators)
    assert (first.outcome, again.outcome, again.written) == ("ok", "unchanged", 0)
    with source.open("a") as out:
        out.write("Podium CP,2016-10-20T10:00:00,2016-10-20T10:01:00,300,521,Filling,0.5758\n")
    changed = await run_feed(definition, broker.batch, actor, tm, first.validators)
    assert (changed.outcome, changed.written) == ("ok", 22)


BAD_ROWS = """Name,LastUpdate,DateUploaded,Occupancy,Capacity,Status,Proportion
Good CP,2016-10-01T00:04:09,2016-10-01T00:05:01,121,1056,Static,0.114583
Bad Number CP,2016-10-01T00:04:09,2016-10-01T00:05:01,lots,1056,Static,0.1
Good CP,2016-10-01T00:09:09,2016-10-01T00:10:01,abc,1056,Filling,0.2
Short CP,2016-10-01T00:04:09,2016-10-01T00:05:01,121
Long CP,2016-10-01T00:04:09,2016-10-01T00:05:01,1,2,Static,0.5,extra
,2016-10-01T00:04:09,2016-10-01T00:05:01,121,1056,Static,0.1
Bad Time CP,yesterday,2016-10-01T00:05:01,121,1056,Static,0.1

Other CP,2016-10-01T00:14:09,2016-10-01T00:15:01,17,140,Emptying,0.12
"""


async def test_malformed_csv_rows(feeds: FeedService, client: httpx.AsyncClient,
                                  tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(BAD_ROWS)
    before = FEED_RUNS.labels("bath-parking", "partial")._value.get()
    report = await feeds.run_definition(ADMIN, example("bath-parking", source=str(source),
                                                       order="file"))
    assert report.outcome == "partial" and report.error is None
    assert (report.records, report.written, report.rejected) == (8, 2, 6)
    reasons = {r.record: r.reason for r in report.rejections}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "occupiedSpotNumber" in reasons[2] and "not a number" in reasons[2]
    assert "4 fields where the header has 7" in reasons[4]
    assert "8 fields" in reasons[5]
    assert "id column 'Name' is empty" in reasons[6]
    assert "ISO 8601" in reasons[7]
    assert FEED_RUNS.labels("bath-parking", "partial")._value.get() == before + 1
    assert FEED_ENTITIES.labels("bath-parking", "rejected")._value.get() >= 6
    # nothing partial: a refused row leaves its entity as the last good row wrote it
    good = await read(client, "urn:ngsi-ld:OffStreetParking:bath:Good-CP", PARKING)
    assert good["occupiedSpotNumber"]["value"] == 121 and good["status"]["value"] == "Static"
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:bath:Bad-Number-CP")
    assert r.status_code == 404
    assert await count(client, "OffStreetParking", PARKING) == 2


async def test_entities_the_broker_refuses_are_reported(feeds: FeedService,
                                                        client: httpx.AsyncClient,
                                                        tmp_path: Path) -> None:
    source = tmp_path / "ids.csv"
    source.write_text("code,status\nurn:ngsi-ld:Thing:1,ok\nnot a uri,ok\nurn:ngsi-ld:Thing:2,ok\n")
    definition = FeedDefinition.from_dict({
        "name": "things", "source": str(source), "batch": 2,
        "mapping": {"type": "Thing", "id": "{code}", "idEncoding": "raw",
                    "attributes": {"status": "status"}}})
    report = await feeds.run_definition(ADMIN, definition)
    assert (report.outcome, report.written, report.rejected) == ("partial", 2, 1)
    [rejection] = report.rejections
    assert rejection.entity_id == "not a uri" and rejection.record == 2
    r = await client.get("/ngsi-ld/v1/entities", params={"type": "Thing"})
    assert sorted(e["id"] for e in r.json()) == ["urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:2"]


async def test_sources_that_cannot_be_read(feeds: FeedService, tmp_path: Path) -> None:
    missing = await feeds.run_definition(ADMIN, example("bath-parking",
                                                       source=str(tmp_path / "gone.csv")))
    assert missing.outcome == "failed" and "cannot read" in (missing.error or "")
    big = await feeds.run_definition(ADMIN, example("bath-parking", max_bytes=100))
    assert big.outcome == "failed" and "more than max_bytes (100)" in (big.error or "")
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"Name\n" + b"x\n" * 100_000))
    inflated = await feeds.run_definition(ADMIN, example("bath-parking", source=str(bomb),
                                                         max_bytes=10_000))
    assert "once uncompressed" in (inflated.error or "")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Name,Status\nCaf\xe9,ok\n".encode("latin-1"))
    text = await feeds.run_definition(ADMIN, example("bath-parking", source=str(latin)))
    assert "not utf-8 text" in (text.error or "")
    no_json = tmp_path / "x.json"
    no_json.write_text("{oops")
    definition = example("bath-parking", source=str(no_json), format="json")
    assert "not a JSON document" in ((await feeds.run_definition(ADMIN, definition)).error or "")
    not_gtfs = await feeds.run_definition(ADMIN, example("caltrain-gtfs", source=str(latin)))
    assert "neither a directory nor a zip" in (not_gtfs.error or "")
    torn = tmp_path / "torn.zip"
    shutil.make_archive(str(tmp_path / "whole"), "zip", DATA / "gtfs-caltrain-sample")
    whole = (tmp_path / "whole.zip").read_bytes()
    torn.write_bytes(whole[:40] + b"\0" * 200 + whole[240:])  # a damaged member
    damaged = await feeds.run_definition(ADMIN, example("caltrain-gtfs", source=str(torn)))
    assert damaged.outcome == "failed", damaged.to_json()
    assert "the GTFS feed cannot be read" in (damaged.error or ""), damaged.error


async def test_full_bath_month_dry_run(feeds: FeedService, client: httpx.AsyncClient) -> None:
    full = SHARED / "parking" / "bath_carparks_2016-10.csv.gz"
    if not full.is_file():
        pytest.skip("shared datasets not present")
    definition = example("bath-parking", source=str(full), batch=2000)
    result = await feeds.check(ADMIN, definition, limit=1)
    assert (result.records, result.entities, result.rejected.count) == (41784, 41784, 0)
    assert await count(client, "OffStreetParking", PARKING) == 0  # a dry run writes nothing
