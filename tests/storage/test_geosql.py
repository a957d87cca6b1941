"""SQLite geo-queries: R-tree prefilter + exact SQL function agree with the pure evaluator."""

from __future__ import annotations

import json
import math
import random
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData
from urbis.context.geo import (
    EARTH_RADIUS_M,
    GeoQuery,
    entity_matches,
    haversine_m,
    parse_geo_query,
)
from urbis.context.model import LOCATION, Entity
from urbis.storage.sqlite.geosql import (
    bbox,
    compile_geo,
    expand_box,
    geo_rows,
    register_functions,
    search_boxes,
)
from urbis.storage.sqlite.schema import migrate

NS = "https://example.org/ns/"
SQUARE = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]


def new_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    register_functions(conn)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = new_db()
    yield db
    db.close()


def expand(term: str) -> str:
    return term if ":" in term else NS + term


def q(georel: str, geometry: str, coordinates: Any, geoproperty: str | None = None) -> GeoQuery:
    query = parse_geo_query(georel, geometry, json.dumps(coordinates), geoproperty, expand)
    assert query is not None
    return query


def entity(eid: str, *geometries: dict[str, Any], attr: str = LOCATION) -> Entity:
    instances = [{"type": "GeoProperty", "value": g} | ({"datasetId": f"urn:ds:{i}"} if i else {})
                 for i, g in enumerate(geometries)]
    return Entity(eid, ["T"], {attr: instances, NS + "name": [{"type": "Property", "value": 1}]})


def insert(conn: sqlite3.Connection, e: Entity) -> None:
    pk = conn.execute(
        "INSERT INTO entities (tenant, id, types, created_at, modified_at, attrs)"
        " VALUES ('t', ?, '[]', 'now', 'now', '{}')", (e.id,)).lastrowid
    for attr, text, (min_x, max_x, min_y, max_y) in geo_rows(e):
        gid = conn.execute("INSERT INTO geo (pk, attr, geojson) VALUES (?, ?, ?)",
                           (pk, attr, text)).lastrowid
        conn.execute("INSERT INTO geo_rtree VALUES (?, ?, ?, ?, ?)",
                     (gid, min_x, max_x, min_y, max_y))


def select(conn: sqlite3.Connection, query: GeoQuery) -> set[str]:
    sql, params = compile_geo(query)
    return {row[0] for row in conn.execute(f"SELECT e.id FROM entities e WHERE {sql}", params)}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def box(min_x: float, min_y: float, max_x: float, max_y: float) -> dict[str, Any]:
    ring = [[min_x, min_y], [max_x, min_y], [max_x, max_y], [min_x, max_y], [min_x, min_y]]
    return {"type": "Polygon", "coordinates": [ring]}


# --- rows and boxes ------------------------------------------------------------------------


def test_geo_rows_one_per_geoproperty_instance() -> None:
    e = entity("urn:x:1", point(1, 2), box(0, 0, 3, 4))
    e.attrs[NS + "area"] = [{"type": "GeoProperty", "value": {
        "type": "GeometryCollection", "geometries": [point(-5, -6), point(7, 8)]}}]
    rows = geo_rows(e)
    assert [(attr, b) for attr, _, b in rows] == [
        (LOCATION, (1.0, 1.0, 2.0, 2.0)),
        (LOCATION, (0.0, 3.0, 0.0, 4.0)),
        (NS + "area", (-5.0, 7.0, -6.0, 8.0)),
    ]
    assert json.loads(rows[0][1]) == point(1, 2)


def test_bbox_of_malformed_geometry_is_none() -> None:
    assert bbox({"type": "Point"}) is None
    assert bbox({"type": "MultiPoint", "coordinates": []}) is None


def test_expand_box_covers_the_distance() -> None:
    [(min_x, max_x, min_y, max_y)] = expand_box((0, 0, 0, 0), 111_195)
    assert (min_x, max_x, min_y, max_y) == pytest.approx((-1, 1, -1, 1), abs=1e-6)
    [(min_x, max_x, _, _)] = expand_box((0, 0, 60, 60), 111_195)
    assert max_x == pytest.approx(2.0, abs=0.01)  # a degree of longitude halves at 60°


def test_expand_box_splits_at_the_antimeridian_and_opens_at_the_poles() -> None:
    boxes = expand_box((179.9, 179.9, 0, 0), 50_000)
    assert boxes[0][1] == 180.0 and boxes[1][0] == -180.0 and boxes[1][1] < -179.0
    assert expand_box((-179.9, -179.9, 0, 0), 50_000)[1][1] == 180.0
    assert expand_box((10, 10, 89.9, 89.9), 50_000) == [(-180.0, 180.0, pytest.approx(89.45,
                                                          abs=0.01), 90.0)]
    assert expand_box((0, 0, 0, 0), 30_000_000) == [(-180.0, 180.0, -90.0, 90.0)]


def test_search_boxes_without_distance_is_the_reference_bbox() -> None:
    assert search_boxes(q("within", "Polygon", SQUARE)) == [pytest.approx((0, 10, 0, 10), abs=1e-6)]


def test_float32_underflow_in_the_rtree_loses_no_row(conn: sqlite3.Connection) -> None:
    insert(conn, entity("urn:tiny", point(0.0, 1.5e-137)))
    assert select(conn, q("within", "Point", [0.0, 1.5e-137])) == {"urn:tiny"}
    assert select(conn, q("intersects", "Point", [0.0, 1.5e-137])) == {"urn:tiny"}
    assert select(conn, q("disjoint", "Point", [0.0, 1e-137])) == {"urn:tiny"}


# --- golden cases --------------------------------------------------------------------------


@pytest.fixture
def city(conn: sqlite3.Connection) -> sqlite3.Connection:
    for e in [
        entity("urn:madrid", point(-3.7038, 40.4168)),
        entity("urn:barcelona", point(2.1734, 41.3851)),
        entity("urn:inside", point(5, 5)),
        entity("urn:edge", point(10, 5)),
        entity("urn:park", box(1, 1, 2, 2)),
        entity("urn:half", box(5, 5, 15, 15)),
        entity("urn:two", point(50, 50), point(4.5, 4.5)),
        entity("urn:fiji", point(179.99, -17)),
        entity("urn:other", point(5, 5), attr=NS + "observationSpace"),
    ]:
        insert(conn, e)
    return conn


@pytest.mark.parametrize(("georel", "geometry", "coords", "geoproperty", "expected"), [
    ("near;maxDistance==510000", "Point", [-3.7038, 40.4168], None, {"urn:madrid",
                                                                     "urn:barcelona"}),
    ("near;maxDistance==500000", "Point", [-3.7038, 40.4168], None, {"urn:madrid"}),
    ("near;minDistance==9000000", "Point", [-3.7038, 40.4168], None, {"urn:fiji"}),
    ("near;maxDistance==3000", "Point", [-179.99, -17], None, {"urn:fiji"}),
    ("near;maxDistance==1", "Point", [5, 5], "observationSpace", {"urn:other"}),
    ("within", "Polygon", SQUARE, None, {"urn:inside", "urn:park", "urn:two"}),
    ("intersects", "Polygon", SQUARE, None, {"urn:inside", "urn:edge", "urn:park", "urn:half",
                                             "urn:two"}),
    ("contains", "Point", [1.5, 1.5], None, {"urn:park"}),
    ("equals", "Point", [5, 5], None, {"urn:inside"}),
    ("overlaps", "Polygon", SQUARE, None, {"urn:half"}),
    ("disjoint", "Polygon", SQUARE, None, {"urn:madrid", "urn:barcelona", "urn:fiji",
                                           "urn:two"}),
])
def test_golden_georels(city: sqlite3.Connection, georel: str, geometry: str, coords: Any,
                        geoproperty: str | None, expected: set[str]) -> None:
    assert select(city, q(georel, geometry, coords, geoproperty)) == expected


# --- SQL agrees with the Python oracle -------------------------------------------------------

lons = st.floats(-180, 180) | st.floats(178, 180) | st.floats(-180, -178)
lats = st.floats(-90, 90) | st.floats(85, 90) | st.floats(-90, -85)
scales = st.sampled_from([1e-4, 0.01, 1.0, 30.0])


@st.composite
def near_point(draw: st.DrawFn, lon: float, lat: float) -> dict[str, Any]:
    scale = draw(scales)
    dx, dy = draw(st.floats(-scale, scale)), draw(st.floats(-scale, scale))
    return point((lon + dx + 180) % 360 - 180, max(-90.0, min(90.0, lat + dy)))


@st.composite
def small_box(draw: st.DrawFn) -> dict[str, Any]:
    x, y = draw(st.floats(-179, 170)), draw(st.floats(-89, 80))
    return box(x, y, x + draw(st.floats(0.01, 9)), y + draw(st.floats(0.01, 9)))


def shifted(geometry: dict[str, Any]) -> dict[str, Any]:
    """A copy moved a little north-east (overlapping, not equal, for the boxes drawn here)."""
    def move(c: Any) -> Any:
        if isinstance(c[0], list):
            return [move(x) for x in c]
        return [(c[0] + 180.004) % 360 - 180, min(90.0, c[1] + 0.004)]
    return {"type": geometry["type"], "coordinates": move(geometry["coordinates"])}


@st.composite
def geo_queries(draw: st.DrawFn) -> tuple[GeoQuery, list[dict[str, Any]]]:
    lon, lat = draw(lons), draw(lats)
    targets = draw(st.lists(near_point(lon, lat) | small_box(), min_size=1, max_size=25))
    georel = draw(st.sampled_from(["near;maxDistance", "near;minDistance", "within", "contains",
                                   "intersects", "disjoint", "overlaps", "equals"]))
    if georel.startswith("near"):
        metres = draw(st.sampled_from([1.0, 500.0, 20_000.0, 1_000_000.0, 15_000_000.0]))
        reference = draw(st.just(point(lon, lat)) | small_box())
        text = f"{georel}=={metres}"
    else:
        reference = draw(small_box() | st.just(point(lon, lat)) | st.sampled_from(targets)
                         | st.sampled_from(targets).map(shifted))
        text = georel
    query = q(text, reference["type"], reference["coordinates"])
    return query, targets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geo_queries())
def test_sql_agrees_with_the_oracle(case: tuple[GeoQuery, list[dict[str, Any]]]) -> None:
    query, targets = case
    db = new_db()
    entities = [entity(f"urn:e:{i}", g) for i, g in enumerate(targets)]
    for e in entities:
        insert(db, e)
    expected = {e.id for e in entities if entity_matches(query, e)}
    assert select(db, query) == expected
    db.close()


# --- injection -----------------------------------------------------------------------------


def test_user_text_never_reaches_sql_text(conn: sqlite3.Connection) -> None:
    insert(conn, entity("urn:x:1", point(1, 1)))
    evil = "x'); DROP TABLE entities; --"
    query = parse_geo_query("near;maxDistance==1000", "Point", "[1,1]", evil, lambda s: s)
    assert query is not None and query.geoproperty == evil
    sql, params = compile_geo(query)
    assert evil not in sql and evil in params
    assert select(conn, query) == set()
    assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 1
    for georel in ("within", "disjoint"):
        attack = GeoQuery(georel, "Point", (1, 1), evil)
        assert evil not in compile_geo(attack)[0]
        assert select(conn, attack) == set()


def test_injection_through_coordinates_or_pk_column_is_refused() -> None:
    with pytest.raises(BadRequestData):
        parse_geo_query("within", "Point", "[1,1]); DROP TABLE entities; --", None, expand)
    with pytest.raises(ValueError, match="pk_col"):
        compile_geo(q("within", "Polygon", SQUARE), pk_col="e.pk); DROP TABLE entities; --")


# --- timing (reported, not asserted) -------------------------------------------------------


@pytest.mark.slow
def test_near_query_over_100k_points_uses_the_rtree(capsys: pytest.CaptureFixture[str]) -> None:
    db = new_db()
    rnd = random.Random(7)
    points = [(rnd.uniform(-3.9, -3.5), rnd.uniform(40.3, 40.6)) for _ in range(100_000)]
    db.executemany("INSERT INTO entities (pk, tenant, id, types, created_at, modified_at, attrs)"
                   " VALUES (?, 't', ?, '[]', 'now', 'now', '{}')",
                   [(i, f"urn:p:{i}") for i in range(len(points))])
    db.executemany("INSERT INTO geo (gid, pk, attr, geojson) VALUES (?, ?, ?, ?)",
                   [(i, i, LOCATION, json.dumps(point(*p))) for i, p in enumerate(points)])
    db.executemany("INSERT INTO geo_rtree VALUES (?, ?, ?, ?, ?)",
                   [(i, x, x, y, y) for i, (x, y) in enumerate(points)])
    centre = (-3.7038, 40.4168)
    query = q("near;maxDistance==2000", "Point", list(centre))
    sql, params = compile_geo(query)
    plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN SELECT e.id FROM entities e"
                                             f" WHERE {sql}", params))
    assert "VIRTUAL TABLE INDEX 2" in plan  # the R-tree answers the box
    start = time.perf_counter()
    found = db.execute(f"SELECT count(*) FROM entities e WHERE {sql}", params).fetchone()[0]
    elapsed = (time.perf_counter() - start) * 1000
    assert found == sum(haversine_m(centre, p) <= 2000 for p in points)
    with capsys.disabled():
        print(f"\nnear;maxDistance==2000 over 100k points: {found} found in {elapsed:.1f} ms")
    db.close()


@st.composite
def near_the_edge(draw: st.DrawFn) -> tuple[GeoQuery, list[dict[str, Any]]]:
    """A Point `near;maxDistance` query and points at about that distance (any bearing)."""
    lon, lat = draw(st.floats(-170, 170)), draw(st.floats(-85, 85))
    metres = draw(st.sampled_from([5.0, 250.0, 2_000.0, 30_000.0, 99_000.0]))
    targets = []
    for _ in range(draw(st.integers(1, 12))):
        bearing = draw(st.floats(0, 2 * math.pi))
        at = metres * draw(st.sampled_from([0.9, 0.99, 0.999, 0.9999, 1.0, 1.0001, 1.001, 1.01,
                                            1.1])) / EARTH_RADIUS_M
        lat2 = math.asin(math.sin(math.radians(lat)) * math.cos(at) + math.cos(
            math.radians(lat)) * math.sin(at) * math.cos(bearing))
        lon2 = math.radians(lon) + math.atan2(
            math.sin(bearing) * math.sin(at) * math.cos(math.radians(lat)),
            math.cos(at) - math.sin(math.radians(lat)) * math.sin(lat2))
        targets.append(point(math.degrees(lon2), math.degrees(lat2)))
    if draw(st.booleans()):
        targets.append(draw(small_box()))
    return q(f"near;maxDistance=={metres}", "Point", [lon, lat]), targets


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_the_edge())
def test_near_decided_in_sql_agrees_with_the_oracle_at_the_edge(
        case: tuple[GeoQuery, list[dict[str, Any]]]) -> None:
    query, targets = case
    db = new_db()
    entities = [entity(f"urn:e:{i}", g) for i, g in enumerate(targets)]
    for e in entities:
        insert(db, e)
    expected = {e.id for e in entities if entity_matches(query, e)}
    assert select(db, query) == expected
    db.close()
