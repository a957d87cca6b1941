"""Declarative mappings: Bath car-park CSV (real data) to OffStreetParking; JSON; GeoJSON."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.connectors.mapping import EntityMapping, MappingError
from urbis.connectors.records import (
    RecordError,
    csv_records,
    entity_id,
    geojson_records,
    json_records,
    map_record,
    map_records,
)
from urbis.connectors.values import ValueConversionError, convert, to_utc

DATA = Path(__file__).parents[1] / "fixtures" / "datasets"
FULL_BATH = Path("/work/shared/data/datasets/parking/bath_carparks_2016-10.csv.gz")

BATH: dict[str, Any] = {
    "type": "OffStreetParking",
    "id": "urn:ngsi-ld:OffStreetParking:bath:{Name}",
    "observedAt": "LastUpdate",
    "timezone": "Europe/London",
    "static": {"dataProvider": "Bath & North East Somerset Council"},
    "attributes": {
        "name": {"source": "Name", "observed": False},
        "occupiedSpotNumber": {"source": "Occupancy", "type": "integer"},
        "totalSpotNumber": {"source": "Capacity", "type": "integer"},
        "availableSpotNumber": {"expression": "Capacity - Occupancy", "type": "integer"},
        "occupancy": {"source": "Proportion", "type": "number", "unitCode": "C62"},
        "status": "Status",
    },
}

BATH_TOML = """
type = "OffStreetParking"
id = "urn:ngsi-ld:OffStreetParking:bath:{Name}"
observedAt = "LastUpdate"
timezone = "Europe/London"

[static]
dataProvider = "Bath & North East Somerset Council"

[attributes.name]
source = "Name"
observed = false

[attributes.occupiedSpotNumber]
source = "Occupancy"
type = "integer"

[attributes.totalSpotNumber]
source = "Capacity"
type = "integer"

[attributes.availableSpotNumber]
expression = "Capacity - Occupancy"
type = "integer"

[attributes.occupancy]
source = "Proportion"
type = "number"
unitCode = "C62"

[attributes]
status = "Status"
"""


def _bath_rows() -> list[dict[str, str]]:
    return list(csv_records((DATA / "bath_carparks_sample.csv").read_text(encoding="utf-8")))


def test_bath_sample_to_off_street_parking() -> None:
    batch = map_records(EntityMapping.from_dict(BATH), _bath_rows())
    assert batch.errors == [] and len(batch.entities) == 21
    first = batch.entities[0]
    observed = "2016-09-30T23:04:09Z"  # 00:04:09 British Summer Time
    assert first == {
        "id": "urn:ngsi-ld:OffStreetParking:bath:Charlotte-Street-CP",
        "type": "OffStreetParking",
        "name": {"type": "Property", "value": "Charlotte Street CP"},
        "occupiedSpotNumber": {"type": "Property", "value": 121, "observedAt": observed},
        "totalSpotNumber": {"type": "Property", "value": 1056, "observedAt": observed},
        "availableSpotNumber": {"type": "Property", "value": 935, "observedAt": observed},
        "occupancy": {
            "type": "Property",
            "value": 0.114583,
            "unitCode": "C62",
            "observedAt": observed,
        },
        "status": {"type": "Property", "value": "Static", "observedAt": observed},
        "dataProvider": {"type": "Property", "value": "Bath & North East Somerset Council"},
    }
    ids = {e["id"] for e in batch.entities}
    assert "urn:ngsi-ld:OffStreetParking:bath:Lansdown-P-R" in ids and len(ids) == 7


def test_toml_json_and_dict_forms_agree() -> None:
    from_dict = EntityMapping.from_dict(BATH)
    from_toml = EntityMapping.from_toml(BATH_TOML)
    from_json = EntityMapping.from_json(json.dumps(BATH))
    rows = _bath_rows()[:3]
    expected = map_records(from_dict, rows).entities
    assert map_records(from_toml, rows).entities == expected
    assert map_records(from_json, rows).entities == expected


@pytest.mark.skipif(not FULL_BATH.exists(), reason="full Bath dataset not available")
def test_full_bath_month() -> None:
    with gzip.open(FULL_BATH, "rt", encoding="utf-8") as handle:
        batch = map_records(EntityMapping.from_dict(BATH), csv_records(handle.read()))
    assert len(batch.entities) == 41_784 and batch.errors == []
    for e in batch.entities:  # the real data holds a few over-full counts: kept as published
        total, used = e["totalSpotNumber"]["value"], e["occupiedSpotNumber"]["value"]
        assert e["availableSpotNumber"]["value"] == total - used


def test_bad_rows_are_reported_and_skipped() -> None:
    rows = _bath_rows()[:3]
    rows[1] = {**rows[1], "Occupancy": "lots"}
    rows[2] = {**rows[2], "LastUpdate": "yesterday"}
    rows.append({**rows[0], "Name": "  "})
    batch = map_records(EntityMapping.from_dict(BATH), rows)
    assert len(batch.entities) == 1
    assert [e.index for e in batch.errors] == [1, 2, 3]
    assert all(isinstance(e, RecordError) for e in batch.errors)


def test_json_records_with_location_and_relationship() -> None:
    mapping = EntityMapping.from_dict(
        {
            "type": "AirQualityObserved",
            "id": "urn:ngsi-ld:AirQualityObserved:{station.id}:{date}",
            "idEncoding": "quote",
            "observedAt": "date",
            "location": {"latitude": "station.lat", "longitude": "station.lon"},
            "attributes": {
                "no2": {"source": "value", "type": "number", "unitCode": "GQ"},
                "refPointOfInterest": {
                    "source": "station.id",
                    "object": "urn:ngsi-ld:PointOfInterest:{value}",
                },
                "dateObserved": {"source": "date", "type": "datetime", "observed": False},
                "raw": {"source": "extra", "type": "json", "datasetId": "urn:ngsi-ld:Dataset:raw"},
            },
        }
    )
    document = {
        "results": [
            {
                "station": {"id": "FR04014", "lat": 48.83722, "lon": 2.3939},
                "date": "2019-06-21T00:00:00+02:00",
                "value": 20.0,
                "extra": {"k": [1]},
            }
        ]
    }
    (entity,) = map_records(mapping, json_records(document, "results")).entities
    assert (
        entity["id"] == "urn:ngsi-ld:AirQualityObserved:FR04014:2019-06-21T00%3A00%3A00%2B02%3A00"
    )
    assert entity["no2"]["observedAt"] == "2019-06-20T22:00:00Z"
    assert entity["refPointOfInterest"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:PointOfInterest:FR04014",
        "observedAt": "2019-06-20T22:00:00Z",
    }
    assert entity["dateObserved"]["value"] == {
        "@type": "DateTime",
        "@value": "2019-06-20T22:00:00Z",
    }
    assert entity["raw"]["datasetId"] == "urn:ngsi-ld:Dataset:raw"
    assert entity["location"]["value"] == {"type": "Point", "coordinates": [2.3939, 48.83722]}


def test_geojson_features() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "p1",
                "geometry": {"type": "Point", "coordinates": [-2.36, 51.38]},
                "properties": {"name": "Podium", "capacity": "521"},
            },
            {
                "type": "Feature",
                "id": "p2",
                "geometry": {"type": "Point", "coordinates": [500, 51]},
                "properties": {"name": "Broken"},
            },
        ],
    }
    mapping = EntityMapping.from_dict(
        {
            "type": "OffStreetParking",
            "id": "urn:ngsi-ld:OffStreetParking:{id}",
            "location": "geometry",
            "attributes": {
                "name": "name",
                "totalSpotNumber": {"source": "capacity", "type": "integer"},
            },
        }
    )
    records = json_records(collection)
    assert records == list(geojson_records(collection))
    batch = map_records(mapping, records)
    assert [e["id"] for e in batch.entities] == ["urn:ngsi-ld:OffStreetParking:p1"]
    assert batch.entities[0]["location"]["value"]["coordinates"] == [-2.36, 51.38]
    assert [e.index for e in batch.errors] == [1]


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"type": "T", "id": "no-placeholder", "attributes": {"a": "a"}},
        {"type": "T", "id": "x:{a}", "attributes": {}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": {"source": "a", "expression": "1"}}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": {"source": "a", "type": "float"}}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": {"expression": "1 +"}}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": {"source": "a", "object": "urn:x"}}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": {"source": "a", "colour": "red"}}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": "a"}, "timezone": "Mars/Olympus"},
        {"type": "T", "id": "x:{a}", "attributes": {"a": "a"}, "location": {"latitude": "y"}},
        {"type": "T", "id": "x:{a}", "attributes": {"a": "a"}, "idEncoding": "base64"},
        {"type": "T", "id": "x:{a}", "attributes": {"a": "a"}, "extra": 1},
        [],
    ],
)
def test_invalid_mappings(spec: Any) -> None:
    with pytest.raises(MappingError):
        EntityMapping.from_dict(spec)


def test_invalid_mapping_text() -> None:
    with pytest.raises(MappingError):
        EntityMapping.from_json("{")
    with pytest.raises(MappingError):
        EntityMapping.from_toml("type = ")


def test_id_template_is_not_python_format() -> None:
    mapping = EntityMapping.from_dict(
        {"type": "T", "id": "urn:ngsi-ld:T:{a.__class__}", "attributes": {"a": "a"}}
    )
    with pytest.raises(ValueConversionError):
        entity_id(mapping, {"a": "x"})
    with pytest.raises(RecordError):
        map_record(mapping, {"a": "x"})


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("12", "number", 12),
        (" 1.5 ", "number", 1.5),
        ("3.0", "integer", 3),
        (7, "integer", 7),
        ("Yes", "boolean", True),
        ("0", "boolean", False),
        ("20140526", "date", {"@type": "Date", "@value": "2014-05-26"}),
        (
            "2016-10-01 00:04:09",
            "datetime",
            {"@type": "DateTime", "@value": "2016-10-01T00:04:09Z"},
        ),
        (0, "datetime", {"@type": "DateTime", "@value": "1970-01-01T00:00:00Z"}),
        (True, "text", "true"),
        ({"a": 1}, "json", {"a": 1}),
    ],
)
def test_convert(value: Any, kind: str, expected: Any) -> None:
    assert convert(value, kind) == expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("x", "number"),
        ("nan", "number"),
        ("inf", "number"),
        (True, "number"),
        ("1.5", "integer"),
        ("maybe", "boolean"),
        ("2016-13-01", "date"),
        ("later", "datetime"),
        (1e300, "datetime"),
        ({"a": 1}, "text"),
        ("x", "colour"),
    ],
)
def test_convert_refuses(value: Any, kind: str) -> None:
    with pytest.raises(ValueConversionError):
        convert(value, kind)


@given(
    st.dictionaries(
        st.sampled_from(["Name", "LastUpdate", "Occupancy", "Capacity", "Proportion", "Status"]),
        st.text(max_size=12),
    )
)
def test_any_row_maps_or_is_refused(row: dict[str, str]) -> None:
    try:
        entity = map_record(EntityMapping.from_dict(BATH), row)
    except RecordError:
        return
    assert entity["type"] == "OffStreetParking"


def test_to_utc_keeps_fraction() -> None:
    assert to_utc("2020-01-01T00:00:00.5+00:00") == "2020-01-01T00:00:00.500Z"


def test_docs_example_mapping_is_the_tested_one() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "devices.md").read_text(encoding="utf-8")
    toml = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    rows = _bath_rows()
    expected = map_records(EntityMapping.from_dict(BATH), rows).entities
    assert map_records(EntityMapping.from_toml(toml), rows).entities == expected


def test_entities_pass_the_brokers_validation() -> None:
    from urbis.context.jsonld import core_term_map
    from urbis.context.normalize import parse_entity

    tm = core_term_map()
    for entity in map_records(EntityMapping.from_dict(BATH), _bath_rows()).entities:
        parsed = parse_entity(entity, tm)
        assert parsed.id == entity["id"]
