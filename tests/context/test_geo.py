"""GeoProperty validation, geo-query parsing and the pure geo-query evaluator."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData, InvalidRequest
from urbis.context.geo import (
    GeoQuery,
    distance_m,
    entity_matches,
    geo_matches,
    haversine_m,
    parse_geo_q_object,
    parse_geo_query,
    validate_geometry,
)
from urbis.context.model import LOCATION, Entity

NS = "https://example.org/ns/"
MADRID = [-3.7038, 40.4168]
BARCELONA = [2.1734, 41.3851]
SQUARE = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
HOLED = [SQUARE[0], [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]


def expand(term: str) -> str:
    return term if ":" in term else NS + term


def q(georel: str, geometry: str, coordinates: Any, geoproperty: str | None = None) -> GeoQuery:
    coords = coordinates if isinstance(coordinates, str) else json.dumps(coordinates)
    query = parse_geo_query(georel, geometry, coords, geoproperty, expand)
    assert query is not None
    return query


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def polygon(rings: Any) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": rings}


# --- validation ----------------------------------------------------------------------------

VALID = [
    point(-3.7, 40.4),
    {"type": "Point", "coordinates": [-3.7, 40.4, 657.0]},
    {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1], [2, 0]]},
    {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
    polygon(SQUARE),
    polygon(HOLED),
    polygon([[[0, 0], [0, 0], [1, 0], [1, 1], [0, 0]]]),  # a repeated vertex is still valid
    polygon([[[180, 0], [180, 1], [179, 1], [180, 0]]]),
    {"type": "MultiPolygon", "coordinates": [SQUARE, [[[20, 20], [21, 20], [21, 21], [20, 20]]]]},
    {"type": "GeometryCollection", "geometries": [point(1, 2), polygon(SQUARE)]},
    {"type": "Point", "coordinates": [1, 2], "bbox": [1, 2, 1, 2]},
]


@pytest.mark.parametrize("geometry", VALID, ids=lambda g: g["type"])
def test_valid_geometries_are_returned_unchanged(geometry: dict[str, Any]) -> None:
    assert validate_geometry(geometry) == geometry


INVALID = [
    (None, "not null"),
    ("POINT(1 2)", "GeoJSON geometry object"),
    ({"type": "Circle", "coordinates": [1, 2]}, "'Circle' is not one of"),
    ({"type": ["Point"], "coordinates": [1, 2]}, "is not one of"),
    ({"type": "Point"}, "needs a 'coordinates'"),
    (point(1, 2) | {"coordinates": [1]}, "2 or 3 numbers"),
    (point(1, 2) | {"coordinates": [1, 2, 3, 4]}, "2 or 3 numbers"),
    (point(1, 2) | {"coordinates": ["1", 2]}, "is not a number"),
    (point(1, 2) | {"coordinates": [True, 2]}, "is not a number"),
    (point(1, 2) | {"coordinates": [math.inf, 2]}, "not a finite number"),
    (point(1, 2) | {"coordinates": [math.nan, 2]}, "not a finite number"),
    (point(181, 0), "longitude 181 is outside"),
    (point(0, -90.5), "latitude -90.5 is outside"),
    ({"type": "MultiPoint", "coordinates": []}, "non-empty array"),
    ({"type": "LineString", "coordinates": [[0, 0, 1], [1, 1]]}, "mix 2 and 3 dimensions"),
    ({"type": "LineString", "coordinates": [[0, 0]]}, "at least two positions"),
    ({"type": "LineString", "coordinates": [0, 0]}, "2 or 3 numbers"),
    ({"type": "LineString", "coordinates": [[1, 1], [1, 1]]}, "Too few points"),
    ({"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [2, 2]]]},
     "not a valid MultiLineString"),
    (polygon([[[0, 0], [1, 0], [1, 1], [0, 1]]]), "shall be closed"),
    (polygon([[[0, 0], [1, 1], [0, 0]]]), "at least four positions"),
    (polygon([[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]), "Self-intersection"),
    (polygon([SQUARE[0], [[20, 20], [21, 20], [21, 21], [20, 20]]]), "not a valid Polygon"),
    ({"type": "MultiPolygon", "coordinates": [SQUARE, SQUARE]}, "not a valid MultiPolygon"),
    ({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0]]]]}, "at least four"),
    ({"type": "GeometryCollection", "geometries": []}, "non-empty 'geometries'"),
    ({"type": "GeometryCollection", "geometries": [
        {"type": "GeometryCollection", "geometries": [point(0, 0)]}]}, "is not one of"),
]


@pytest.mark.parametrize(("value", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_geometries_name_the_problem(value: Any, message: str) -> None:
    with pytest.raises(BadRequestData) as err:
        validate_geometry(value)
    assert message in err.value.detail


def test_error_detail_points_at_the_bad_position() -> None:
    with pytest.raises(BadRequestData, match=r"coordinates\[0\]\[2\]: longitude 200"):
        validate_geometry(polygon([[[0, 0], [1, 0], [200, 1], [0, 0]]]))


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["type", "coordinates", "geometries", "x"]), children,
                      max_size=4),
    max_leaves=30,
)
geometry_like = st.fixed_dictionaries({
    "type": st.sampled_from(["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                             "MultiPolygon", "GeometryCollection", "Feature"]),
    "coordinates": json_values,
    "geometries": st.lists(json_values, max_size=3),
})


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, geometry_like))
def test_arbitrary_json_only_raises_bad_request_data(value: Any) -> None:
    try:
        assert isinstance(validate_geometry(value), dict)
    except (BadRequestData, InvalidRequest):
        pass


# --- parsing -------------------------------------------------------------------------------


def test_parse_defaults_and_canonical_forms() -> None:
    assert parse_geo_query(None, None, None, None, expand) is None
    query = q("near;maxDistance==2000", "Point", "[8,40]")
    assert query == GeoQuery("near", "Point", (8, 40), LOCATION, 2000.0, None)
    assert query.geojson == {"type": "Point", "coordinates": [8, 40]}
    assert q("near;minDistance==1.5e3", "Point", [8, 40]).min_distance == 1500.0
    # ABNF literals are case-insensitive (RFC 5234 clause 2.3).
    assert q("NEAR;MaxDistance==10", "point", "[8,40]").geometry == "Point"
    assert q("Within", "polygon", SQUARE).georel == "within"


def test_parse_geoproperty_is_expanded() -> None:
    assert q("within", "Polygon", SQUARE, "observationSpace").geoproperty == NS + "observationSpace"
    assert q("within", "Polygon", SQUARE, "").geoproperty == LOCATION


def test_parse_geo_q_object() -> None:
    obj = {"georel": "intersects", "geometry": "Polygon", "coordinates": SQUARE,
           "geoproperty": "operationSpace"}
    query = parse_geo_q_object(obj, expand)
    assert (query.georel, query.geoproperty) == ("intersects", NS + "operationSpace")
    assert parse_geo_q_object({**obj, "coordinates": json.dumps(SQUARE)}, expand) == query


BAD_QUERIES = [
    ("within", None, "[8,40]", "missing: geometry"),
    (None, "Point", "[8,40]", "missing: georel"),
    ("within", "Point", None, "missing: coordinates"),
    ("touches", "Point", "[8,40]", "'touches' is not one of"),
    ("", "Point", "[8,40]", "is not one of"),
    ("near", "Point", "[8,40]", "exactly one distance"),
    ("near;maxDistance==5;minDistance==1", "Point", "[8,40]", "exactly one distance"),
    ("near;maxDistance=5", "Point", "[8,40]", "maxDistance==<n>"),
    ("near;distance==5", "Point", "[8,40]", "maxDistance==<n>"),
    ("near;maxDistance==0", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==-100", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==inf", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==1e400", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==012", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==1,000", "Point", "[8,40]", "positive, non-zero"),
    ("near;maxDistance==", "Point", "[8,40]", "positive, non-zero"),
    ("within;maxDistance==5", "Polygon", json.dumps(SQUARE), "takes no modifiers"),
    ("within", "Circle", "[8,40]", "'Circle' is not one of"),
    ("within", "GeometryCollection", "[]", "is not one of"),
    ("within", "Point", "[8,40", "shall be a JSON array"),
    ("within", "Point", "8,40", "shall be a JSON array"),
    ("within", "Point", "[NaN,40]", "shall be a JSON array"),
    ("within", "Point", '"[8,40]"', "not a str"),
    ("within", "Point", "{}", "not a dict"),
    ("within", "Point", "[" * 100_000, "shall be a JSON array"),
    ("within", "Point", "[[8,40]]", "2 or 3 numbers"),
    ("within", "Point", "[8,95]", "latitude 95 is outside"),
    ("within", "LineString", "[[8,40]]", "at least two positions"),
    ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "shall be closed"),
    ("within", "Polygon", "[[[0,0],[2,2],[2,0],[0,2],[0,0]]]", "Self-intersection"),
]


@pytest.mark.parametrize(("georel", "geometry", "coordinates", "message"), BAD_QUERIES,
                         ids=[f"{b[0]}|{b[1]}|{b[2]!s:.20}" for b in BAD_QUERIES])
def test_bad_geo_queries_are_rejected(georel: str | None, geometry: str | None,
                                      coordinates: str | None, message: str) -> None:
    with pytest.raises(BadRequestData) as err:
        parse_geo_query(georel, geometry, coordinates, None, expand)
    assert message in err.value.detail


@pytest.mark.parametrize(("obj", "message"), [
    ("near", "shall be a JSON object"),
    ({"geometry": "Point", "coordinates": [1, 2]}, "needs a 'georel'"),
    ({"georel": "within", "geometry": "Point", "coordinates": None}, "needs a 'coordinates'"),
    ({"georel": 5, "geometry": "Point", "coordinates": [1, 2]}, "'georel' shall be a string"),
    ({"georel": "within", "geometry": "Point", "coordinates": [1, 2], "geoproperty": 3},
     "'geoproperty' shall be a string"),
    ({"georel": "within", "geometry": "Point", "coordinates": {"a": 1}}, "not a dict"),
])
def test_bad_geo_q_objects_are_rejected(obj: Any, message: str) -> None:
    with pytest.raises(BadRequestData) as err:
        parse_geo_q_object(obj, expand)
    assert message in err.value.detail


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=15), st.text(max_size=40))
def test_arbitrary_parameters_only_raise_bad_request(georel: str, geometry: str,
                                                     coordinates: str) -> None:
    try:
        parse_geo_query(georel, geometry, coordinates, None, expand)
    except (BadRequestData, InvalidRequest):
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["near;maxDistance==10", "within", "intersects"]),
       st.sampled_from(["Point", "LineString", "Polygon", "MultiPolygon"]), json_values)
def test_arbitrary_coordinates_only_raise_bad_request(georel: str, geometry: str,
                                                      coordinates: Any) -> None:
    try:
        parse_geo_query(georel, geometry, json.dumps(coordinates), None, expand)
    except (BadRequestData, InvalidRequest):
        pass


# --- distances -----------------------------------------------------------------------------


def test_haversine_golden_distances() -> None:
    assert haversine_m(MADRID, BARCELONA) == pytest.approx(505_000, abs=1_500)
    assert haversine_m((0, 0), (1, 0)) == pytest.approx(111_195, abs=1)
    assert haversine_m((179.99, 0), (-179.99, 0)) == pytest.approx(2_224, abs=1)
    assert haversine_m((0, 90), (123, 90)) == pytest.approx(0, abs=1e-6)


def test_distance_to_extended_geometries_uses_the_closest_point() -> None:
    line = {"type": "LineString", "coordinates": [[0, 60], [10, 60]]}
    assert distance_m(line, point(10, 60.009)) == pytest.approx(1_001, abs=2)
    assert distance_m(line, point(5, 60.01)) == pytest.approx(1_112, abs=2)
    # At latitude 85 a degree of longitude is ~9.7 km, a degree of latitude ~111 km.
    high = {"type": "LineString", "coordinates": [[1, 85], [0, 85.6]]}
    assert 9_000 < distance_m(point(0, 85), high) < 9_700
    assert distance_m(polygon(SQUARE), point(5, 5)) == 0
    assert distance_m(polygon(SQUARE), point(11, 5)) == pytest.approx(110_772, abs=2)  # cos 5°


# --- evaluation ----------------------------------------------------------------------------


def test_near_golden_madrid_barcelona() -> None:
    bcn = point(*BARCELONA)
    assert geo_matches(q("near;maxDistance==510000", "Point", MADRID), bcn)
    assert not geo_matches(q("near;maxDistance==500000", "Point", MADRID), bcn)
    assert geo_matches(q("near;minDistance==500000", "Point", MADRID), bcn)
    assert not geo_matches(q("near;minDistance==510000", "Point", MADRID), bcn)


def test_near_across_the_antimeridian_and_at_the_pole() -> None:
    assert geo_matches(q("near;maxDistance==3000", "Point", [179.99, 0]), point(-179.99, 0))
    assert geo_matches(q("near;maxDistance==10", "Point", [0, 90]), point(135, 90))
    assert geo_matches(q("near;maxDistance==2000", "LineString", [[0, 60], [10, 60]]),
                       point(10, 60.009))
    assert not geo_matches(q("near;maxDistance==2000", "LineString", [[0, 61], [10, 61]]),
                           point(10, 60.009))


GOLDEN = [
    ("within", "Polygon", SQUARE, point(5, 5), True),
    ("within", "Polygon", HOLED, point(5, 5), False),  # inside the hole
    ("within", "Polygon", HOLED, point(2, 2), True),
    ("within", "Polygon", SQUARE, point(10, 5), False),  # boundary is not interior (DE-9IM)
    ("within", "Polygon", SQUARE, polygon([[[1, 1], [2, 1], [2, 2], [1, 1]]]), True),
    ("within", "Polygon", SQUARE, polygon([[[5, 5], [15, 5], [15, 15], [5, 5]]]), False),
    ("contains", "Point", [5, 5], polygon(SQUARE), True),
    ("contains", "Point", [5, 5], point(5, 5), True),
    ("contains", "Point", [50, 5], polygon(SQUARE), False),
    ("intersects", "Point", [10, 5], polygon(SQUARE), True),
    ("intersects", "LineString", [[-5, 5], [5, 5]], polygon(SQUARE), True),
    ("intersects", "LineString", [[-5, 5], [-1, 5]], polygon(SQUARE), False),
    ("equals", "Point", [5, 5], point(5, 5), True),
    ("equals", "Polygon", [[[0, 0], [0, 10], [10, 10], [10, 0], [0, 0]]], polygon(SQUARE), True),
    ("equals", "Polygon", [[[0, 0], [0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]],
     polygon(SQUARE), True),
    ("equals", "Point", [5, 5], point(5, 6), False),
    ("disjoint", "Point", [50, 5], polygon(SQUARE), True),
    ("disjoint", "Point", [10, 5], polygon(SQUARE), False),  # touching is not disjoint
    ("disjoint", "Point", [5, 5], point(5, 6), True),
    ("overlaps", "Polygon", [[[5, 5], [15, 5], [15, 15], [5, 5]]], polygon(SQUARE), True),
    ("overlaps", "Polygon", [[[1, 1], [2, 1], [2, 2], [1, 1]]], polygon(SQUARE), False),
    ("overlaps", "Point", [5, 5], polygon(SQUARE), False),  # different dimensions
]


@pytest.mark.parametrize(("georel", "geometry", "coords", "target", "expected"), GOLDEN,
                         ids=[f"{g[0]}-{g[1]}-{g[4]}" for g in GOLDEN])
def test_georel_golden_cases(georel: str, geometry: str, coords: Any, target: dict[str, Any],
                             expected: bool) -> None:
    assert geo_matches(q(georel, geometry, coords), target) is expected


def test_malformed_target_geometry_never_matches() -> None:
    for georel in ("within", "disjoint", "near;maxDistance==10", "near;minDistance==10"):
        query = q(georel, "Point", [5, 5]) if "near" in georel else q(georel, "Polygon", SQUARE)
        assert not geo_matches(query, {"type": "Point"})
        assert not geo_matches(query, {"coordinates": [1, 2]})


def test_entity_matches_any_instance_of_the_geoproperty() -> None:
    def geo(value: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
        inst: dict[str, Any] = {"type": "GeoProperty", "value": value}
        return inst | ({"datasetId": dataset} if dataset else {})

    entity = Entity("urn:x:1", ["T"], {
        LOCATION: [geo(point(50, 50)), geo(point(5, 5), "urn:ds:2")],
        NS + "area": [{"type": "Property", "value": point(5, 5)}],
    })
    assert entity_matches(q("within", "Polygon", SQUARE), entity)
    assert entity_matches(q("disjoint", "Polygon", SQUARE), entity)
    assert not entity_matches(q("within", "Polygon", SQUARE, "area"), entity)
    # An entity without the target GeoProperty never matches, not even disjoint (4.10).
    assert not entity_matches(q("disjoint", "Polygon", SQUARE, "elsewhere"), entity)
