"""Geo-queries on PostGIS: one `geo` row per GeoProperty instance, GiST-indexed.

A geo-query compiles into `pk IN (subquery over geo)`; an entity matches when any instance of
the GeoProperty matches, with the entity geometry as the subject of the relation (as in
`urbis.context.geo`): `within` is ST_Within(entity, reference), `contains` is
ST_Contains(entity, reference), and so on. Topological relations run on `geometry` in the
lon/lat plane (the same GEOS predicates as the pure evaluator). `near` runs on `geography`
on the sphere (`use_spheroid => false`: the evaluator's haversine), maxDistance with the
index-assisted ST_DWithin and minDistance as its negation; both sides are segmentized to
0.01 degree first so great-circle edges follow the lon/lat-straight edges of RFC 7946.
GeometryCollections live in their own column and go through `urbis_geo_relation`, which
relates the union of the members where GEOS (3.11) refuses a collection whose members overlap.
The reference geometry travels as a parameter (hex EWKB made by shapely), never in the SQL
text (S608 is silenced for that reason).
"""

from __future__ import annotations

import re
import struct
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from urbis.context.geo import GeoQuery
from urbis.context.model import Entity
from urbis.storage.postgres.qsql import Params

SRID = 4326
SEGMENT_DEG = 0.01
GeoRow = tuple[str, str | None, str | None, str]  # attr, geom, gc, geog (hex EWKB)
_PK_COL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_POINT = struct.Struct("<BIIdd")  # little endian, type Point | SRID flag, SRID, x, y
_FUNCTIONS = {"within": "ST_Within", "contains": "ST_Contains", "intersects": "ST_Intersects",
              "overlaps": "ST_Overlaps", "equals": "ST_Equals", "disjoint": "ST_Disjoint"}
_SHAPE_ERRORS = (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError,
                 AttributeError)


def geo_rows(entity: Entity) -> list[GeoRow]:
    """(attribute IRI, geometry, collection, geography) of every usable GeoProperty instance."""
    rows: list[GeoRow] = []
    for attr, value in entity.geo_values():
        row = _row(value)
        if row is not None:
            rows.append((attr, *row))
    return rows


def _row(value: dict[str, Any]) -> tuple[str | None, str | None, str] | None:
    if value.get("type") == "Point":
        coords = value.get("coordinates")
        if isinstance(coords, list) and 2 <= len(coords) <= 3 and all(
                isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
            point = _POINT.pack(1, 0x20000001, SRID, float(coords[0]), float(coords[1])).hex()
            return point, None, point
    try:
        geometry = shapely.force_2d(shape(value))
    except _SHAPE_ERRORS:
        return None  # malformed: the pure evaluator never matches it either
    if geometry.is_empty:
        return None
    text, geog = ewkb(geometry), ewkb(shapely.segmentize(geometry, SEGMENT_DEG))
    if geometry.geom_type == "GeometryCollection":
        return None, text, geog
    return text, None, geog


def ewkb(geometry: BaseGeometry) -> str:
    """Hex EWKB with SRID 4326, the text form PostGIS reads as geometry or geography."""
    return str(shapely.to_wkb(shapely.set_srid(geometry, SRID), hex=True, include_srid=True))


def compile_geo(query: GeoQuery, params: Params, pk_col: str = "e.pk") -> str:
    """A condition selecting entities (by `pk_col`) that match the geo-query."""
    if not _PK_COL.fullmatch(pk_col):
        raise ValueError(f"pk_col shall be a column reference, got {pk_col!r}")
    reference = shapely.force_2d(shape(query.geojson))
    attr = params.name(query.geoproperty)
    if query.georel == "near":
        return f"{pk_col} IN ({_near(query, reference, attr, params)})"
    ref = params.add(ewkb(reference), "geometry")
    function = _FUNCTIONS[query.georel]
    relation = params.add(query.georel, "text")
    collections = (f"SELECT g.pk FROM geo g WHERE g.attr = {attr} AND g.gc IS NOT NULL "  # noqa: S608
                   f"AND urbis_geo_relation({relation}, g.gc, {ref})")
    if query.georel == "disjoint":  # a negative relation: no index helps
        return (f"{pk_col} IN (SELECT g.pk FROM geo g WHERE g.attr = {attr} AND "  # noqa: S608
                f"(ST_Disjoint(g.geom, {ref}) OR (g.gc IS NOT NULL AND "
                f"urbis_geo_relation({relation}, g.gc, {ref}))))")
    simple = f"SELECT g.pk FROM geo g WHERE g.attr = {attr} AND {function}(g.geom, {ref})"  # noqa: S608
    return f"{pk_col} IN ({simple} UNION ALL {collections})"


def _near(query: GeoQuery, reference: BaseGeometry, attr: str, params: Params) -> str:
    ref = params.add(ewkb(shapely.segmentize(reference, SEGMENT_DEG)), "geography")
    if query.max_distance is not None:
        within = f"ST_DWithin(g.geog, {ref}, {params.add(query.max_distance, 'float8')}, false)"
    else:
        within = f"NOT ST_DWithin(g.geog, {ref}, {params.add(query.min_distance, 'float8')}, false)"
    return f"SELECT g.pk FROM geo g WHERE g.attr = {attr} AND {within}"  # noqa: S608
