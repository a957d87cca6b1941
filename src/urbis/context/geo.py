"""GeoProperty values and geo-queries (ETSI GS CIM 009 V1.8.1 clauses 4.7, 4.10, 5.2.13).

Geometries are GeoJSON (IETF RFC 7946) in WGS84 longitude/latitude. Topological relations
are evaluated by shapely in the lon/lat plane, as RFC 7946 (3.1.1) defines edges as straight
Cartesian lines. `near` distances are metres on a sphere of radius `EARTH_RADIUS_M`: the
haversine distance between the closest pair of points of the two geometries, where the point
of a segment closest to a vertex is chosen in a local equirectangular projection centred on
that vertex (an approximation whose error is second order in the projection error, well under
a metre at city scale). Geometries that intersect are at distance 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from urbis.context.errors import BadRequestData
from urbis.context.model import GEO_PROPERTY, LOCATION, Entity

EARTH_RADIUS_M = 6_371_008.8
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
COLLECTION = "GeometryCollection"
GEORELS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")
_CANONICAL = {name.lower(): name for name in GEOMETRY_TYPES}
# RFC 8259 number production without the minus sign (clause 4.10 PositiveNumber).
_NUMBER = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

Position = tuple[float, float]
Segment = tuple[Position, Position]


# --- GeoJSON geometry validation (clause 4.7, RFC 7946 clause 3.1) -----------------------


def validate_geometry(value: Any) -> dict[str, Any]:
    """Check a GeoProperty value (a GeoJSON geometry); return it, or raise BadRequestData."""
    _check_geometry(value, "GeoProperty value", allow_collection=True)
    return _copy(value)


def _copy(value: Any) -> Any:
    """A deep copy of checked GeoJSON (dicts, lists and scalars only)."""
    if type(value) is dict and value.get("type") == "Point" and len(value) == 2:
        return {"type": "Point", "coordinates": list(value["coordinates"])}
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _check_geometry(value: Any, where: str, allow_collection: bool) -> None:
    if not isinstance(value, dict):
        raise BadRequestData(f"{where} shall be a GeoJSON geometry object, not {_kind(value)}")
    gtype = value.get("type")
    if gtype == COLLECTION and allow_collection:
        _check_collection(value, where)
        return
    if not isinstance(gtype, str) or gtype not in GEOMETRY_TYPES:
        allowed = ", ".join(GEOMETRY_TYPES + ((COLLECTION,) if allow_collection else ()))
        raise BadRequestData(f"{where}: geometry type {gtype!r} is not one of {allowed}")
    if "coordinates" not in value:
        raise BadRequestData(f"{where}: a {gtype} needs a 'coordinates' member")
    _check_coordinates(gtype, value["coordinates"], f"{where} ({gtype}) coordinates")
    if len(_position_sizes(value["coordinates"])) > 1:
        raise BadRequestData(f"{where}: positions mix 2 and 3 dimensions")
    if gtype not in ("Point", "MultiPoint"):
        _check_valid(value, where)


def _check_collection(value: dict[str, Any], where: str) -> None:
    members = value.get("geometries")
    if not isinstance(members, list) or not members:
        raise BadRequestData(f"{where}: a GeometryCollection needs a non-empty 'geometries' array")
    for index, member in enumerate(members):
        _check_geometry(member, f"{where} geometries[{index}]", allow_collection=False)


def _check_coordinates(gtype: str, coords: Any, path: str) -> None:
    if gtype == "Point":
        _check_position(coords, path)
        return
    if not isinstance(coords, list | tuple) or not coords:
        raise BadRequestData(f"{path}: shall be a non-empty array")
    for index, item in enumerate(coords):
        sub = f"{path}[{index}]"
        if gtype in ("MultiPoint", "LineString"):
            _check_position(item, sub)
        elif gtype in ("MultiLineString", "Polygon"):
            _check_coordinates("LineString", item, sub)
            if gtype == "Polygon":
                _check_ring(item, sub)
        else:
            _check_coordinates("Polygon", item, sub)
    if gtype == "LineString" and len(coords) < 2:
        raise BadRequestData(f"{path}: a LineString needs at least two positions")


def _check_ring(ring: Any, path: str) -> None:
    if len(ring) < 4:
        raise BadRequestData(f"{path}: a linear ring needs at least four positions")
    if list(ring[0]) != list(ring[-1]):
        raise BadRequestData(f"{path}: a linear ring shall be closed (last position = first)")


def _check_position(pos: Any, path: str) -> None:
    if not isinstance(pos, list | tuple) or not 2 <= len(pos) <= 3:
        raise BadRequestData(f"{path}: a position is an array of 2 or 3 numbers [lon, lat(, alt)]")
    for number in pos:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise BadRequestData(f"{path}: {number!r} is not a number")
        if not math.isfinite(number):
            raise BadRequestData(f"{path}: {number!r} is not a finite number")
    if not -180 <= pos[0] <= 180:
        raise BadRequestData(f"{path}: longitude {pos[0]} is outside [-180, 180]")
    if not -90 <= pos[1] <= 90:
        raise BadRequestData(f"{path}: latitude {pos[1]} is outside [-90, 90]")


def _position_sizes(coords: Any) -> set[int]:
    if coords and isinstance(coords[0], int | float):
        return {len(coords)}
    return set().union(*(_position_sizes(item) for item in coords))


def _check_valid(value: dict[str, Any], where: str) -> None:
    try:
        geom = shape(value)
        reason = None if geom.is_valid else shapely.is_valid_reason(geom)
    except (shapely.errors.ShapelyError, ValueError, TypeError) as exc:
        raise BadRequestData(f"{where}: not a valid {value['type']}: {exc}") from None
    if reason is not None:
        raise BadRequestData(f"{where}: not a valid {value['type']} ({reason})")


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


# --- Geo-query parsing (clause 4.10; GeoQuery data type clause 5.2.13) --------------------


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A parsed geo-query; `coordinates` are nested tuples, distances are metres."""

    georel: str
    geometry: str
    coordinates: Any
    geoproperty: str = LOCATION
    max_distance: float | None = None
    min_distance: float | None = None

    @property
    def geojson(self) -> dict[str, Any]:
        """The reference geometry as a GeoJSON object."""
        return {"type": self.geometry, "coordinates": _as_lists(self.coordinates)}


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: str | list[Any] | None,
    geoproperty: str | None,
    expand: Callable[[str], str],
) -> GeoQuery | None:
    """Build a GeoQuery from the query parameters; None when no geo-query was asked for."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(v is None for v in given.values()):
        return None
    missing = [name for name, v in given.items() if v is None]
    if missing:
        raise BadRequestData(
            f"a geo-query needs georel, geometry and coordinates together; missing: "
            f"{', '.join(missing)}"
        )
    if not isinstance(georel, str) or not isinstance(geometry, str):
        raise BadRequestData("georel and geometry shall be strings")
    rel, max_d, min_d = _parse_georel(georel)
    gtype = _CANONICAL.get(geometry.strip().lower())
    if gtype is None:
        raise BadRequestData(
            f"geometry {geometry!r} is not one of {', '.join(GEOMETRY_TYPES)}"
        )
    coords = _parse_coordinates(coordinates)
    _check_geometry({"type": gtype, "coordinates": coords}, "geo-query", allow_collection=False)
    prop = LOCATION if geoproperty in (None, "") else _expand_name(str(geoproperty), expand)
    return GeoQuery(rel, gtype, _as_tuples(coords), prop, max_d, min_d)


def parse_geo_q_object(obj: Any, expand: Callable[[str], str]) -> GeoQuery:
    """Build a GeoQuery from a `geoQ` member (POST /entityOperations/query, subscriptions)."""
    if not isinstance(obj, dict):
        raise BadRequestData(f"geoQ shall be a JSON object, not {_kind(obj)}")
    for name in ("georel", "geometry", "coordinates"):
        if obj.get(name) is None:
            raise BadRequestData(f"geoQ needs a '{name}' member")
    for name in ("georel", "geometry", "geoproperty"):
        if name in obj and not isinstance(obj[name], str):
            raise BadRequestData(f"geoQ '{name}' shall be a string")
    query = parse_geo_query(
        obj["georel"], obj["geometry"], obj["coordinates"], obj.get("geoproperty"), expand
    )
    assert query is not None  # all three members are present
    return query


def _parse_georel(text: str) -> tuple[str, float | None, float | None]:
    parts = [part.strip() for part in text.split(";")]
    rel = parts[0].lower()
    if rel not in GEORELS:
        raise BadRequestData(f"georel {parts[0]!r} is not one of {', '.join(GEORELS)}")
    if rel != "near":
        if len(parts) > 1:
            raise BadRequestData(f"georel '{rel}' takes no modifiers, got {text!r}")
        return rel, None, None
    if len(parts) != 2:
        raise BadRequestData(
            "georel 'near' needs exactly one distance: near;maxDistance==<metres> or "
            f"near;minDistance==<metres>, got {text!r}"
        )
    name, sep, number = parts[1].partition("==")
    name = name.strip().lower()
    if not sep or name not in ("maxdistance", "mindistance"):
        raise BadRequestData(f"near takes maxDistance==<n> or minDistance==<n>, got {text!r}")
    distance = _positive_number(number.strip())
    return ("near", distance, None) if name == "maxdistance" else ("near", None, distance)


def _positive_number(text: str) -> float:
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadRequestData(f"distance {text!r} shall be a positive, non-zero number of metres")
    return value


def _parse_coordinates(coordinates: Any) -> Any:
    if isinstance(coordinates, str):
        try:
            coordinates = json.loads(coordinates, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise BadRequestData(
                f"coordinates shall be a JSON array, e.g. [8.1,40.2]: {coordinates[:80]!r}"
            ) from None
    if not isinstance(coordinates, list | tuple):
        raise BadRequestData(f"coordinates shall be a JSON array, not {_kind(coordinates)}")
    return coordinates


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _expand_name(name: str, expand: Callable[[str], str]) -> str:
    if not name.strip():
        raise BadRequestData("geoproperty shall not be empty")
    return expand(name)


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def _as_lists(value: Any) -> Any:
    return [_as_lists(v) for v in value] if isinstance(value, list | tuple) else value


# --- Evaluation ---------------------------------------------------------------------------

Matcher = Callable[[dict[str, Any]], bool]

_PREDICATES: dict[str, Callable[[BaseGeometry, BaseGeometry], bool]] = {
    # (reference, target): the entity's geometry is the subject of the relation.
    "within": lambda ref, target: bool(shapely.contains(ref, target)),
    "contains": lambda ref, target: bool(shapely.contains(target, ref)),
    "intersects": lambda ref, target: bool(shapely.intersects(ref, target)),
    "disjoint": lambda ref, target: bool(shapely.disjoint(ref, target)),
    "overlaps": lambda ref, target: bool(shapely.overlaps(ref, target)),
    "equals": lambda ref, target: bool(shapely.equals(target, ref)),
}


# Fast paths for point targets: (test on the prepared reference, negate the result).
_POINT_TESTS: dict[str, tuple[Callable[..., Any] | None, bool]] = {
    "within": (shapely.contains_xy, False),
    "intersects": (shapely.intersects_xy, False),
    "disjoint": (shapely.intersects_xy, True),
}


def geo_matches(query: GeoQuery, geometry: dict[str, Any]) -> bool:
    """True when an entity geometry satisfies the geo-query (False for malformed geometry)."""
    return compile_matcher(query)(geometry)


def entity_matches(query: GeoQuery, entity: Entity) -> bool:
    """True when any instance of the query's GeoProperty satisfies it (clause 4.10)."""
    matcher = compile_matcher(query)
    return any(
        inst.get("type") == GEO_PROPERTY and isinstance(inst.get("value"), dict)
        and matcher(inst["value"])
        for inst in entity.attrs.get(query.geoproperty, ())
    )


@lru_cache(maxsize=256)
def compile_matcher(query: GeoQuery) -> Matcher:
    """A fast predicate over GeoJSON geometries for one query (reference geometry prepared)."""
    ref = shape(query.geojson)
    shapely.prepare(ref)
    if query.georel == "near":
        return _near_matcher(query, ref)
    predicate = _PREDICATES[query.georel]
    point_test, negate = _POINT_TESTS.get(query.georel, (None, False))

    def match(geometry: dict[str, Any]) -> bool:
        try:
            if point_test is not None and geometry["type"] == "Point":
                x, y = geometry["coordinates"][:2]
                return bool(point_test(ref, x, y)) != negate
            return predicate(ref, shape(geometry))
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, AttributeError):
            return False

    return match


def _near_matcher(query: GeoQuery, ref: BaseGeometry) -> Matcher:
    ref_parts = _parts(query.geojson)
    limit = query.max_distance if query.max_distance is not None else query.min_distance
    assert limit is not None
    is_max = query.max_distance is not None
    points, segments = ref_parts
    if len(points) == 1 and not segments:
        return _point_near_matcher(points[0], limit, is_max, ref, ref_parts)

    def match(geometry: dict[str, Any]) -> bool:
        try:
            distance = _distance(ref, ref_parts, geometry)
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError):
            return False
        return distance <= limit if is_max else distance >= limit

    return match


def _point_near_matcher(centre: Position, limit: float, is_max: bool, ref: BaseGeometry,
                        ref_parts: tuple[list[Position], list[Segment]]) -> Matcher:
    """`near` a Point: haversine with the centre's trigonometry computed once."""
    lon0, lat0 = math.radians(centre[0]), math.radians(centre[1])
    cos0 = math.cos(lat0)
    angle = min(math.pi / 2, limit / EARTH_RADIUS_M / 2)
    bound = math.sin(angle) ** 2  # compare haversine terms, not distances

    def match(geometry: dict[str, Any]) -> bool:
        try:
            if geometry["type"] == "Point":
                lon, lat = math.radians(geometry["coordinates"][0]), math.radians(
                    geometry["coordinates"][1])
                h = math.sin((lat - lat0) / 2) ** 2 + cos0 * math.cos(lat) * math.sin(
                    (lon - lon0) / 2) ** 2
                return h <= bound if is_max else h >= bound
            distance = _distance(ref, ref_parts, geometry)
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError):
            return False
        return distance <= limit if is_max else distance >= limit

    return match


def distance_m(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Distance in metres between two GeoJSON geometries (method: see module docstring)."""
    ref = shape(a)
    return _distance(ref, _parts(a), b)


def haversine_m(a: Position, b: Position) -> float:
    """Great-circle distance in metres between two (lon, lat) positions."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + (
        math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _distance(ref: BaseGeometry, ref_parts: tuple[list[Position], list[Segment]],
              geometry: dict[str, Any]) -> float:
    points, segments = ref_parts
    if geometry["type"] == "Point" and len(points) == 1 and not segments:
        return haversine_m(points[0], (geometry["coordinates"][0], geometry["coordinates"][1]))
    if shapely.intersects(ref, shape(geometry)):
        return 0.0
    target_points, target_segments = _parts(geometry)
    return min(
        min((_point_to_parts(v, points, segments) for v in _vertices(target_points,
                                                                       target_segments)),
            default=math.inf),
        min((_point_to_parts(v, target_points, target_segments)
             for v in _vertices(points, segments)), default=math.inf),
    )


def _parts(geometry: dict[str, Any]) -> tuple[list[Position], list[Segment]]:
    """Isolated points and segments (line and ring edges) of a geometry."""
    points: list[Position] = []
    segments: list[Segment] = []
    for gtype, coords in _simple_parts(geometry):
        if gtype in ("Point", "MultiPoint"):
            points.extend((p[0], p[1]) for p in ([coords] if gtype == "Point" else coords))
            continue
        lines = {"LineString": [coords], "MultiLineString": coords, "Polygon": coords}.get(
            gtype, [ring for polygon in coords for ring in polygon])
        for line in lines:
            segments.extend(((a[0], a[1]), (b[0], b[1])) for a, b in pairwise(line))
    return points, segments


def _simple_parts(geometry: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if geometry["type"] == COLLECTION:
        for member in geometry["geometries"]:
            yield from _simple_parts(member)
    else:
        yield geometry["type"], geometry["coordinates"]


def _vertices(points: list[Position], segments: list[Segment]) -> list[Position]:
    return points + [vertex for segment in segments for vertex in segment]


def _point_to_parts(p: Position, points: list[Position], segments: list[Segment]) -> float:
    return min(
        min((haversine_m(p, q) for q in points), default=math.inf),
        min((_point_to_segment(p, a, b) for a, b in segments), default=math.inf),
    )


def _point_to_segment(p: Position, a: Position, b: Position) -> float:
    """Metres from p to the lon/lat-straight segment ab (closest point found in a local plane)."""
    kx = math.cos(math.radians(p[1]))
    ax = _wrap(a[0] - p[0]) * kx
    ay = a[1] - p[1]
    dx, dy = (b[0] - a[0]) * kx, b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, -(ax * dx + ay * dy) / length2))
    closest = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    return min(haversine_m(p, closest), haversine_m(p, a), haversine_m(p, b))


def _wrap(dlon: float) -> float:
    return (dlon + 180.0) % 360.0 - 180.0
