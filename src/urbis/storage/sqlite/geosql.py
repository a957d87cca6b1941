"""Geo-queries on SQLite: the `geo` table + `geo_rtree` R-tree and an exact SQL function.

Every GeoProperty instance of an entity is one `geo` row (gid, pk, attr, geojson) with its
bounding box in `geo_rtree` (same gid). A geo-query compiles into `pk IN (subquery)`: the
R-tree selects candidate rows by bounding box, then `urbis_geo_match(geojson, key)` decides
exactly with the same code as the pure evaluator `urbis.context.geo.geo_matches`. The query
travels as a bound parameter (`key`, canonical JSON); its parsed, prepared reference geometry
is cached per key, so each row costs one GeoJSON parse and one predicate.

`disjoint` and `near;minDistance` are negative relations: a row whose box misses the (expanded)
reference box matches outright; only the others are checked exactly. An entity matches when
any instance of the GeoProperty matches (instances are independent geometries).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

import orjson

from urbis.context.geo import EARTH_RADIUS_M, GeoQuery, Matcher, compile_matcher
from urbis.context.model import Entity

FUNCTION = "urbis_geo_match"
Box = tuple[float, float, float, float]  # (min_x, max_x, min_y, max_y), as in geo_rtree
_PK_COL = re.compile(r"\+?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_WORLD_LON = (-180.0, 180.0)
# Box expansions err outwards: the prefilter may only ever add candidates.
_MARGIN_DEG = 1e-9


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the geo SQL functions on a connection (call once per connection).

    Prepared GEOS geometries are not safe to share between threads, so each connection
    (used by one thread at a time) keeps its own small cache of compiled matchers.
    """
    cache: dict[str, Matcher] = {}

    def match(geojson: str, key: str) -> int:
        matcher = cache.get(key)
        if matcher is None:
            if len(cache) >= 64:
                cache.clear()
            matcher = cache[key] = _build_matcher(key)
        try:
            geometry = orjson.loads(geojson)
        except (orjson.JSONDecodeError, TypeError):
            return 0
        return 1 if matcher(geometry) else 0

    conn.create_function(FUNCTION, 2, match, deterministic=True)


def query_key(query: GeoQuery) -> str:
    """The canonical text of a query's matching part, passed to SQL as a bound parameter."""
    coords = json.loads(json.dumps(query.coordinates))
    body = [query.georel, query.geometry, coords, query.max_distance, query.min_distance]
    return json.dumps(body, separators=(",", ":"))


def geo_rows(entity: Entity) -> list[tuple[str, str, Box]]:
    """(attribute IRI, GeoJSON text, bbox) for every GeoProperty instance of an entity."""
    rows: list[tuple[str, str, Box]] = []
    for attr, geometry in entity.geo_values():
        box = bbox(geometry)
        if box is not None:
            rows.append((attr, orjson.dumps(geometry).decode(), box))
    return rows


def compile_geo(query: GeoQuery, pk_col: str = "e.pk") -> tuple[str, list[Any]]:
    """An SQL boolean fragment selecting entities (by `pk_col`) that match the geo-query."""
    if not _PK_COL.fullmatch(pk_col):
        raise ValueError(f"pk_col shall be a column reference, got {pk_col!r}")
    key = query_key(query)
    boxes = search_boxes(query)
    if query.georel == "disjoint" or query.min_distance is not None:
        return _negative(pk_col, boxes, query.geoproperty, key)
    decided = _near_point_bands(query)
    if decided is not None:
        return _positive(pk_col, boxes, query.geoproperty, key, decided)
    return _positive(pk_col, boxes, query.geoproperty, key)


# SQL text is built only from these constants and the checked `pk_col`; values are bound.
_CANDIDATES = (
    "SELECT g.pk FROM geo_rtree r JOIN geo g ON g.gid = r.gid"
    " WHERE r.max_x >= ? AND r.min_x <= ? AND r.max_y >= ? AND r.min_y <= ?"
    " AND g.attr = ? AND urbis_geo_match(g.geojson, ?)"
)
_OVERLAP = "(r.max_x >= ? AND r.min_x <= ? AND r.max_y >= ? AND r.min_y <= ?)"


def _positive(pk_col: str, boxes: list[Box], attr: str, key: str,
              bands: tuple[str, list[Any]] | None = None) -> tuple[str, list[Any]]:
    sql, band_params = _CANDIDATES, []
    if bands is not None:
        sql = _CANDIDATES.replace(f"{FUNCTION}(g.geojson, ?)", bands[0])
        band_params = bands[1]
    params: list[Any] = []
    for min_x, max_x, min_y, max_y in boxes:
        params += [min_x, max_x, min_y, max_y, attr, *band_params, key]
    return f"{pk_col} IN ({' UNION ALL '.join([sql] * len(boxes))})", params


# `near;maxDistance` of a Point, decided in SQL for most rows: d, the distance from the point
# to the centre of a row's box on a plane tangent at the point (metres), and h, a bound on the
# box's half-size: d + h <= inner is inside, d - h >= outer outside (inner and outer: the
# distance shrunk and grown by a margin covering the plane's error); only rows in between
# call the exact function. Squares throughout: SQLite may lack sqrt().
_D2 = ("((r.min_x + r.max_x) / 2 - ?) * ? * ((r.min_x + r.max_x) / 2 - ?) * ? + "
       "((r.min_y + r.max_y) / 2 - ?) * ? * ((r.min_y + r.max_y) / 2 - ?) * ?")
_H = "((r.max_x - r.min_x) + (r.max_y - r.min_y)) / 2 * ?"
_BANDS = (f"CASE WHEN {_H} <= ? AND {_D2} <= (? - {_H}) * (? - {_H}) THEN 1 "
          f"WHEN {_D2} >= (? + {_H}) * (? + {_H}) THEN 0 "
          f"ELSE {FUNCTION}(g.geojson, ?) END")
_NEAR_MAX_M = 100_000.0  # beyond this the plane is too rough to be worth it
_NEAR_MAX_LAT = 80.0


def _near_point_bands(query: GeoQuery) -> tuple[str, list[Any]] | None:
    """The SQL deciding `near;maxDistance` of a Point (CASE ... END, and its parameters but
    the key); None when the exact function decides every row."""
    limit = query.max_distance
    if query.georel != "near" or limit is None or query.geometry != "Point" or \
            not 0 < limit <= _NEAR_MAX_M:
        return None
    lon0, lat0 = float(query.coordinates[0]), float(query.coordinates[1])
    reach = math.degrees(limit / EARTH_RADIUS_M / math.cos(math.radians(_NEAR_MAX_LAT + 5)))
    if abs(lat0) > _NEAR_MAX_LAT or abs(lon0) + reach >= 180.0:
        return None  # near a pole or the antimeridian: the exact function decides
    ky = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude (>= of longitude)
    kx = ky * math.cos(math.radians(lat0))  # metres per degree of longitude at the point
    # relative error of the plane within `limit` (the cosine's change over the latitudes
    # covered, the sphere's curvature), doubled, and a few centimetres for float32 boxes
    spread = limit / EARTH_RADIUS_M
    eps = 2 * spread * (1 + math.tan(math.radians(abs(lat0)) + 2 * spread)) + 1e-4
    inner, outer = limit * (1 - eps) - 0.1, limit * (1 + eps) + 0.1
    d2 = [lon0, kx, lon0, kx, lat0, ky, lat0, ky]
    params: list[Any] = [ky, inner, *d2, inner, ky, inner, ky,
                         *d2, outer, ky, outer, ky]
    return _BANDS, params


def _negative(pk_col: str, boxes: list[Box], attr: str, key: str) -> tuple[str, list[Any]]:
    overlap = " OR ".join([_OVERLAP] * len(boxes))
    sql = (
        f"{pk_col} IN (SELECT g.pk FROM geo g WHERE g.attr = ? AND ("  # noqa: S608 (constants)
        f"NOT EXISTS (SELECT 1 FROM geo_rtree r WHERE r.gid = g.gid AND ({overlap}))"
        " OR urbis_geo_match(g.geojson, ?)))"
    )
    params: list[Any] = [attr]
    for box in boxes:
        params += list(box)
    return sql, [*params, key]


def search_boxes(query: GeoQuery) -> list[Box]:
    """R-tree search boxes covering every geometry that may match (near: expanded, wrapped)."""
    box = bbox(query.geojson)
    assert box is not None  # query geometries are validated when parsed
    distance = query.max_distance if query.max_distance is not None else query.min_distance
    if distance is not None:
        return expand_box(box, distance)
    # The R-tree keeps float32 boxes rounded outwards, except that values within ~1e-38 of
    # zero may underflow to 0: a hair of margin keeps such rows among the candidates.
    min_x, max_x, min_y, max_y = box
    return [(min_x - _MARGIN_DEG, max_x + _MARGIN_DEG, min_y - _MARGIN_DEG, max_y + _MARGIN_DEG)]


def expand_box(box: Box, metres: float) -> list[Box]:
    """Boxes covering all points within `metres` of `box`, split at the antimeridian."""
    min_x, max_x, min_y, max_y = box
    radians = metres / EARTH_RADIUS_M
    dlat = math.degrees(radians) * (1 + 1e-9) + _MARGIN_DEG
    low, high = max(-90.0, min_y - dlat), min(90.0, max_y + dlat)
    phi = math.radians(max(abs(min_y), abs(max_y)))
    if radians >= math.pi / 2 or math.sin(radians) >= math.cos(phi):
        return [(*_WORLD_LON, low, high)]  # the circle around some point reaches a pole
    dlon = math.degrees(math.asin(math.sin(radians) / math.cos(phi))) * (1 + 1e-9) + _MARGIN_DEG
    west, east = min_x - dlon, max_x + dlon
    if east - west >= 360.0:
        return [(*_WORLD_LON, low, high)]
    boxes: list[Box] = [(max(west, -180.0), min(east, 180.0), low, high)]
    if west < -180.0:
        boxes.append((west + 360.0, 180.0, low, high))
    if east > 180.0:
        boxes.append((-180.0, east - 360.0, low, high))
    return boxes


def bbox(geometry: Any) -> Box | None:
    """(min_x, max_x, min_y, max_y) of a GeoJSON geometry; None if it has no positions."""
    xs: list[float] = []
    ys: list[float] = []
    try:
        _collect(geometry, xs, ys)
    except (TypeError, KeyError, IndexError):
        return None
    if not xs:
        return None
    return (min(xs), max(xs), min(ys), max(ys))


def _collect(geometry: Any, xs: list[float], ys: list[float]) -> None:
    if geometry.get("type") == "GeometryCollection":
        for member in geometry["geometries"]:
            _collect(member, xs, ys)
        return
    stack = [geometry["coordinates"]]
    while stack:
        item = stack.pop()
        if item and isinstance(item[0], int | float):
            xs.append(float(item[0]))
            ys.append(float(item[1]))
        else:
            stack.extend(item)


def _build_matcher(key: str) -> Matcher:
    georel, geometry, coords, max_distance, min_distance = json.loads(key)
    query = GeoQuery(georel, geometry, _as_tuples(coords), "", max_distance, min_distance)
    return compile_matcher.__wrapped__(query)  # uncached: the caller caches per connection


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value
