"""GTFS static feeds to Smart Data Models GTFS entities (real Caltrain, Cairns and NYC feeds)."""

from __future__ import annotations

import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from urbis.connectors.gtfs import GtfsError, GtfsFeed

SAMPLE = Path(__file__).parents[1] / "fixtures" / "datasets" / "gtfs-caltrain-sample"
FEEDS = Path("/work/shared/data/datasets/gtfs")


def test_sample_directory_feed() -> None:
    feed = GtfsFeed(SAMPLE, prefix="caltrain", source="https://www.caltrain.com/gtfs")
    entities = list(feed.entities(stop_times=True))
    assert feed.errors == []
    counts = Counter(e["type"] for e in entities)
    assert counts == {
        "GtfsAgency": 1,
        "GtfsStop": 8,
        "GtfsStation": 2,
        "GtfsRoute": 4,
        "GtfsService": 3,
        "GtfsCalendarRule": 3,
        "GtfsCalendarDateRule": 8,
        "GtfsTrip": 5,
        "GtfsStopTime": 7,
    }
    by_id = {e["id"]: e for e in entities}
    assert by_id["urn:ngsi-ld:GtfsAgency:caltrain:CT"] == {
        "id": "urn:ngsi-ld:GtfsAgency:caltrain:CT",
        "type": "GtfsAgency",
        "agencyName": {"type": "Property", "value": "Caltrain"},
        "page": {"type": "Property", "value": "http://www.caltrain.com"},
        "timezone": {"type": "Property", "value": "America/Los_Angeles"},
        "language": {"type": "Property", "value": "en"},
        "phone": {"type": "Property", "value": "800-660-4287"},
        "source": {"type": "Property", "value": "https://www.caltrain.com/gtfs"},
    }
    stop = by_id["urn:ngsi-ld:GtfsStop:caltrain:70011"]
    assert stop["name"]["value"] == "San Francisco Caltrain"
    assert stop["code"]["value"] == "70011"
    assert stop["location"] == {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [-122.394992, 37.77639]},
    }
    assert stop["hasParentStation"]["object"] == "urn:ngsi-ld:GtfsStation:caltrain:ctsf"
    assert stop["operatedBy"]["object"] == "urn:ngsi-ld:GtfsAgency:caltrain:CT"
    assert "urn:ngsi-ld:GtfsStation:caltrain:ctsf" in by_id
    trip = by_id["urn:ngsi-ld:GtfsTrip:caltrain:23a"]
    assert trip["hasRoute"]["object"] == "urn:ngsi-ld:GtfsRoute:caltrain:TaSj-16APR"
    assert (
        trip["hasService"]["object"]
        == "urn:ngsi-ld:GtfsService:caltrain:CT-16APR-Caltrain-Saturday-02"
    )
    assert trip["headSign"]["value"] == "DIRIDON STATION"
    assert trip["direction"]["value"] == 0
    route = by_id["urn:ngsi-ld:GtfsRoute:caltrain:Lo-16APR"]
    assert route["name"]["value"] == "Local" and route["routeType"]["value"] == "2"
    assert "shortName" not in route  # blank in the feed
    rule = by_id["urn:ngsi-ld:GtfsCalendarRule:caltrain:CT-16APR-Caltrain-Weekday-01"]
    assert rule["monday"]["value"] is True and rule["sunday"]["value"] is False
    assert rule["startDate"]["value"] == {"@type": "Date", "@value": "2016-04-04"}
    stop_time = by_id["urn:ngsi-ld:GtfsStopTime:caltrain:23a%3A1"]
    assert stop_time["arrivalTime"]["value"] == "7:33:00"
    assert stop_time["stopSequence"]["value"] == 1


def test_zip_feed_equals_directory_feed(tmp_path: Path) -> None:
    archive = tmp_path / "feed.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in SAMPLE.iterdir():
            out.write(file, f"nested/{file.name}")
    from_zip = list(GtfsFeed(archive, "caltrain").entities(stop_times=True))
    assert from_zip == list(GtfsFeed(SAMPLE, "caltrain").entities(stop_times=True))


def test_bad_rows_are_skipped(tmp_path: Path) -> None:
    shutil.copytree(SAMPLE, tmp_path / "feed")
    stops = tmp_path / "feed" / "stops.txt"
    lines = stops.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("37.77639", "north")
    stops.write_text("\n".join(lines) + "\n", encoding="utf-8")
    feed = GtfsFeed(tmp_path / "feed", "caltrain")
    stop_ids = [e["id"] for e in feed.stops()]
    assert "urn:ngsi-ld:GtfsStop:caltrain:70011" not in stop_ids and len(stop_ids) == 9
    assert len(feed.errors) == 1 and "stops.txt" in feed.errors[0].reason


def test_not_a_feed(tmp_path: Path) -> None:
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(GtfsError):
        GtfsFeed(bogus, "x")


@pytest.mark.skipif(not FEEDS.exists(), reason="full GTFS feeds not available")
@pytest.mark.parametrize(
    ("name", "agencies", "routes", "trips"),
    [
        ("caltrain_20160406.zip", 1, 4, 218),
        ("cairns_gtfs_2014.zip", 1, 22, 1339),
        ("nyc_subway_gtfs_2024-12.zip", 1, 2, 1990),
    ],
)
def test_real_feeds(name: str, agencies: int, routes: int, trips: int) -> None:
    feed = GtfsFeed(FEEDS / name, prefix=name.split("_")[0])
    counts = Counter(e["type"] for e in feed.entities())
    assert feed.errors == []
    assert (counts["GtfsAgency"], counts["GtfsRoute"], counts["GtfsTrip"]) == (
        agencies,
        routes,
        trips,
    )
    assert counts["GtfsStop"] > 0 and counts["GtfsService"] > 0


def test_entities_pass_the_brokers_validation() -> None:
    from urbis.context.jsonld import core_term_map
    from urbis.context.normalize import parse_entity

    tm = core_term_map()
    for entity in GtfsFeed(SAMPLE, "caltrain").entities(stop_times=True):
        assert parse_entity(entity, tm).id == entity["id"]
