"""Deterministic, realistic bench entities: car parks and air-quality stations over a city.

Entity `i` (0-based) has type `TYPES[i % 2]` and id `urn:ngsi-ld:<type>:bench-<i:06d>`; the
wrk Lua scripts (bench/wrk/common.lua) build the same ids from an index, so keep both in step.
Every entity has seven attributes, one of them a GeoProperty Point spread uniformly over a
square around the city centre: 14 km x 14 km for 100,000 entities, smaller for fewer, so
that the density (and what a `near` query finds) stays the same. Attributes use the core
@context (no Link header), so terms expand to the default vocabulary.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

TYPES = ("OffStreetParking", "AirQualityObserved")
ID_FORMAT = "urn:ngsi-ld:{type}:bench-{index:06d}"
OBSERVED_AT = "2024-05-06T08:00:00Z"
# The numeric attribute that the PATCH scenario writes, per type.
PATCH_ATTRS = {"OffStreetParking": "availableSpotNumber", "AirQualityObserved": "no2"}


@dataclass(frozen=True)
class City:
    """The area entities are spread over: a centre and a half-side in metres."""

    lat: float = 40.4168
    lon: float = -3.7038
    half_side_m: float = 7000.0

    @classmethod
    def for_entities(cls, count: int) -> City:
        """A city as dense as 100,000 entities over 14 km x 14 km."""
        return cls(half_side_m=max(500.0, 7000.0 * math.sqrt(count / 100_000)))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) in degrees."""
        dlat = self.half_side_m / 111_320.0
        dlon = self.half_side_m / (111_320.0 * math.cos(math.radians(self.lat)))
        return (self.lon - dlon, self.lat - dlat, self.lon + dlon, self.lat + dlat)


def entity_type(index: int) -> str:
    """The type of entity `index`."""
    return TYPES[index % len(TYPES)]


def entity_id(index: int) -> str:
    """The id of entity `index`."""
    return ID_FORMAT.format(type=entity_type(index), index=index)


def _prop(value: Any, observed: bool = False) -> dict[str, Any]:
    attr: dict[str, Any] = {"type": "Property", "value": value}
    if observed:
        attr["observedAt"] = OBSERVED_AT
    return attr


def _location(rng: random.Random, city: City) -> dict[str, Any]:
    lon0, lat0, lon1, lat1 = city.bbox
    point = [round(rng.uniform(lon0, lon1), 6), round(rng.uniform(lat0, lat1), 6)]
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": point}}


def parking(index: int, rng: random.Random, city: City) -> dict[str, Any]:
    """An OffStreetParking-like entity."""
    total = rng.randint(50, 800)
    available = rng.randint(0, total)
    return {
        "id": entity_id(index),
        "type": "OffStreetParking",
        "name": _prop(f"Car park {index}"),
        "category": _prop(rng.choice((["public"], ["private"], ["public", "underground"]))),
        "totalSpotNumber": _prop(total),
        "availableSpotNumber": _prop(available, observed=True),
        "occupancy": _prop(round(1 - available / total, 3), observed=True),
        "status": _prop(rng.choice(("open", "open", "open", "closed", "full"))),
        "location": _location(rng, city),
    }


def air_quality(index: int, rng: random.Random, city: City) -> dict[str, Any]:
    """An AirQualityObserved-like entity."""
    return {
        "id": entity_id(index),
        "type": "AirQualityObserved",
        "name": _prop(f"Air quality station {index}"),
        "no2": _prop(round(rng.uniform(5, 120), 1), observed=True),
        "pm10": _prop(round(rng.uniform(2, 80), 1), observed=True),
        "pm25": _prop(round(rng.uniform(1, 50), 1), observed=True),
        "temperature": _prop(round(rng.uniform(-2, 38), 1), observed=True),
        "airQualityLevel": _prop(rng.choice(("good", "moderate", "unhealthy"))),
        "location": _location(rng, city),
    }


def entity(index: int, rng: random.Random, city: City) -> dict[str, Any]:
    """Entity `index`, its values drawn from `rng`."""
    build = parking if entity_type(index) == "OffStreetParking" else air_quality
    return build(index, rng, city)


def entities(count: int, seed: int = 1, city: City | None = None) -> Iterator[dict[str, Any]]:
    """Entities 0..count-1, the same for the same seed."""
    rng = random.Random(seed)
    city = city or City()
    for index in range(count):
        yield entity(index, rng, city)


def batches(count: int, size: int, seed: int = 1, city: City | None = None) -> list[bytes]:
    """The `count` entities as serialised upsert bodies of `size` entities each."""
    out: list[bytes] = []
    chunk: list[dict[str, Any]] = []
    for item in entities(count, seed, city):
        chunk.append(item)
        if len(chunk) == size:
            out.append(orjson.dumps(chunk))
            chunk = []
    if chunk:
        out.append(orjson.dumps(chunk))
    return out


def update_batches(count: int, size: int, bodies: int, seed: int = 2,
                   city: City | None = None) -> list[bytes]:
    """`bodies` upsert bodies that each rewrite `size` random existing entities of `count`."""
    rng = random.Random(seed)
    city = city or City()
    out = []
    for _ in range(bodies):
        picked = rng.sample(range(count), min(size, count))
        out.append(orjson.dumps([entity(i, rng, city) for i in picked]))
    return out
