"""Conversion of fetched bytes (pure): any CSV or JSON text converts or is refused cleanly."""

from __future__ import annotations

from typing import Any

from feedkit import example
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.agents.feed_convert import Conversion, Rejection, csv_rows
from urbis.agents.feed_fetch import FetchError, Payload, Validators

HEADER = "Name,LastUpdate,DateUploaded,Occupancy,Capacity,Status,Proportion\n"
BATH = example("bath-parking", order="file")


def _convert(data: bytes, **changes: Any) -> tuple[list[Any], Conversion]:
    definition = example("bath-parking", **changes) if changes else BATH
    conversion = Conversion(definition, Payload(data, Validators()))
    return list(conversion.entities()), conversion


def test_csv_rows_are_numbered_and_checked() -> None:
    rows = list(csv_rows('a;b\n1;2\n\n3\n"4;5";6\n1;2;3\n', ";"))
    assert rows[0] == (1, {"a": "1", "b": "2"})
    assert rows[1][0] == 2 and isinstance(rows[1][1], Rejection)
    assert rows[2] == (3, {"a": "4;5", "b": "6"})
    assert isinstance(rows[3][1], Rejection) and "3 fields" in rows[3][1].reason
    assert list(csv_rows("")) == []


def test_order_by_observation_time() -> None:
    later = "P,2016-10-01T10:00:00,x,5,10,Static,0.5\n"
    earlier = "P,2016-10-01T09:00:00,x,6,10,Static,0.6\n"
    entities, _ = _convert((HEADER + later + earlier).encode(), order="observedAt")
    assert [n for n, _ in entities] == [2, 1]
    in_file, _ = _convert((HEADER + later + earlier).encode())
    assert [n for n, _ in in_file] == [1, 2]


def test_json_records_under_a_path() -> None:
    doc = b'{"data": {"parks": [{"Name": "A", "LastUpdate": "2016-10-01T10:00:00"}, 3]}}'
    entities, conversion = _convert(doc, format="json", records="data.parks")
    assert [e["id"] for _, e in entities] == ["urn:ngsi-ld:OffStreetParking:bath:A"]
    assert conversion.rejected.count == 1 and conversion.records == 2
    try:
        _convert(b'{"data": 1}', format="json", records="data.parks")
    except FetchError as exc:
        assert "no list of records" in str(exc) and "'data.parks'" in str(exc)
    else:
        raise AssertionError("a document without records must fail")
    try:
        _convert(b'[{"Name": "A"}]', format="geojson")
    except FetchError as exc:
        assert "FeatureCollection" in str(exc)
    else:
        raise AssertionError("a geojson feed must be a FeatureCollection")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["P", "", "12", "x", "2016-10-01T00:00:00", '"',
                                          ",", "0.5", "\n", "é"]), max_size=9), max_size=8))
def test_any_csv_converts_or_is_refused(rows: list[list[str]]) -> None:
    text = HEADER + "\n".join(",".join(row) for row in rows)
    try:
        entities, conversion = _convert(text.encode())
    except FetchError:
        return
    assert len(entities) + conversion.rejected.count == conversion.records
    for _, entity in entities:
        assert entity["id"].startswith("urn:ngsi-ld:OffStreetParking:bath:")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["Name", "LastUpdate", "type",
                                                       "features", "x"]), inner, max_size=4),
                    max_leaves=12))
def test_any_json_converts_or_is_refused(document: Any) -> None:
    import json

    for fmt in ("json", "geojson"):
        try:
            entities, conversion = _convert(json.dumps(document).encode(), format=fmt)
        except FetchError:
            continue
        assert len(entities) + conversion.rejected.count == conversion.records
