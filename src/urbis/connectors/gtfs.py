"""GTFS static feeds (a zip file or a directory) as Smart Data Models GTFS entities.

agency.txt -> GtfsAgency, stops.txt -> GtfsStop (location_type 0), GtfsStation (1) and
GtfsAccessPoint (2), routes.txt -> GtfsRoute, trips.txt -> GtfsTrip, calendar.txt ->
GtfsCalendarRule, calendar_dates.txt -> GtfsCalendarDateRule, every service id -> GtfsService,
and, on request, stop_times.txt -> GtfsStopTime. Ids are `urn:ngsi-ld:<Type>:<prefix>:<gtfs id>`
(the GTFS id percent-encoded), so several feeds live side by side. Attribute names follow
dataModel.UrbanMobility. A bad row is recorded in `errors` and skipped.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from urbis.connectors.records import RecordError
from urbis.connectors.values import ValueConversionError, convert, is_missing

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
STOP_TYPES = {"": "GtfsStop", "0": "GtfsStop", "1": "GtfsStation", "2": "GtfsAccessPoint"}


class GtfsError(ValueError):
    """A feed that cannot be read at all (not a zip/directory, a required file missing)."""


class GtfsFeed:
    """A GTFS feed read lazily, table by table, and converted into NGSI-LD entities."""

    def __init__(self, path: str | Path, prefix: str, source: str | None = None) -> None:
        self.path = Path(path)
        self.prefix = prefix
        self.source = source
        self.errors: list[RecordError] = []
        if not (self.path.is_dir() or zipfile.is_zipfile(self.path)):
            raise GtfsError(f"{self.path} is neither a directory nor a zip file")
        self._agency_ids: list[str] | None = None

    # --- reading ----------------------------------------------------------------------------

    def has(self, table: str) -> bool:
        """Whether the feed holds `<table>.txt`."""
        if self.path.is_dir():
            return (self.path / f"{table}.txt").is_file()
        with zipfile.ZipFile(self.path) as archive:
            return self._member(archive, table) is not None

    @staticmethod
    def _member(archive: zipfile.ZipFile, table: str) -> str | None:
        wanted = f"{table}.txt"
        return next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == wanted), None)

    def rows(self, table: str) -> Iterator[dict[str, str]]:
        """The rows of `<table>.txt` as dicts (nothing if the file is absent)."""
        if self.path.is_dir():
            file = self.path / f"{table}.txt"
            if file.is_file():
                with file.open(encoding="utf-8-sig", newline="") as handle:
                    yield from _clean_rows(handle)
            return
        with zipfile.ZipFile(self.path) as archive:
            name = self._member(archive, table)
            if name is None:
                return
            with archive.open(name) as raw:
                yield from _clean_rows(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))

    # --- ids ----------------------------------------------------------------------------------

    def urn(self, entity_type: str, gtfs_id: str) -> str:
        """The entity id for a GTFS id of a given type."""
        return f"urn:ngsi-ld:{entity_type}:{self.prefix}:{quote(gtfs_id.strip(), safe='-._~')}"

    def agency_ids(self) -> list[str]:
        """The feed's agency ids (`default` for a single agency without an id)."""
        if self._agency_ids is None:
            self._agency_ids = [r.get("agency_id") or "default" for r in self.rows("agency")]
        return self._agency_ids

    def _sole_agency(self) -> str | None:
        ids = self.agency_ids()
        return self.urn("GtfsAgency", ids[0]) if len(ids) == 1 else None

    # --- conversion ---------------------------------------------------------------------------

    def entities(self, stop_times: bool = False) -> Iterator[dict[str, Any]]:
        """Every entity of the feed, agencies first, stop times only on request."""
        yield from self.agencies()
        yield from self.stops()
        yield from self.routes()
        yield from self.services()
        yield from self.calendar_rules()
        yield from self.calendar_date_rules()
        yield from self.trips()
        if stop_times:
            yield from self.stop_times()

    def _convert(
        self, table: str, build: Callable[[dict[str, str]], dict[str, Any] | None]
    ) -> Iterator[dict[str, Any]]:
        for index, row in enumerate(self.rows(table)):
            try:
                entity = build(row)
            except (ValueConversionError, KeyError) as exc:
                self.errors.append(RecordError(index, f"{table}.txt: {exc}"))
                continue
            if entity is not None:
                yield entity

    def agencies(self) -> Iterator[dict[str, Any]]:
        """GtfsAgency entities."""

        def build(row: dict[str, str]) -> dict[str, Any]:
            entity = _entity(
                self.urn("GtfsAgency", row.get("agency_id") or "default"), "GtfsAgency"
            )
            _props(
                entity,
                row,
                agencyName="agency_name",
                page="agency_url",
                timezone="agency_timezone",
                language="agency_lang",
                phone="agency_phone",
            )
            if self.source:
                entity["source"] = _property(self.source)
            return entity

        return self._convert("agency", build)

    def stops(self) -> Iterator[dict[str, Any]]:
        """GtfsStop, GtfsStation and GtfsAccessPoint entities (other location types skipped)."""
        operator = self._sole_agency()

        def build(row: dict[str, str]) -> dict[str, Any] | None:
            kind = STOP_TYPES.get(row.get("location_type", "").strip())
            if kind is None:
                return None  # generic nodes and boarding areas have no Smart Data Model
            entity = _entity(self.urn(kind, row["stop_id"]), kind)
            _props(
                entity,
                row,
                name="stop_name",
                code="stop_code",
                description="stop_desc",
                zoneCode="zone_id",
                page="stop_url",
                wheelChairAccessible="wheelchair_boarding",
            )
            entity["location"] = _point(row)
            if not is_missing(row.get("parent_station")):
                target = self.urn("GtfsStation", row["parent_station"])
                entity["hasParentStation"] = _relationship(target)
            if operator and kind == "GtfsStop":
                entity["operatedBy"] = _relationship(operator)
            return entity

        return self._convert("stops", build)

    def routes(self) -> Iterator[dict[str, Any]]:
        """GtfsRoute entities."""
        operator = self._sole_agency()

        def build(row: dict[str, str]) -> dict[str, Any]:
            entity = _entity(self.urn("GtfsRoute", row["route_id"]), "GtfsRoute")
            _props(
                entity,
                row,
                shortName="route_short_name",
                name="route_long_name",
                description="route_desc",
                routeType="route_type",
                page="route_url",
                routeColor="route_color",
                routeTextColor="route_text_color",
            )
            if not is_missing(row.get("route_sort_order")):
                entity["routeSortOrder"] = _property(convert(row["route_sort_order"], "integer"))
            agency = (row.get("agency_id") or "").strip()
            target = self.urn("GtfsAgency", agency) if agency else operator
            if target:
                entity["operatedBy"] = _relationship(target)
            return entity

        return self._convert("routes", build)

    def trips(self) -> Iterator[dict[str, Any]]:
        """GtfsTrip entities."""

        def build(row: dict[str, str]) -> dict[str, Any]:
            entity = _entity(self.urn("GtfsTrip", row["trip_id"]), "GtfsTrip")
            entity["hasRoute"] = _relationship(self.urn("GtfsRoute", row["route_id"]))
            entity["hasService"] = _relationship(self.urn("GtfsService", row["service_id"]))
            if not is_missing(row.get("shape_id")):
                entity["hasShape"] = _relationship(self.urn("GtfsShape", row["shape_id"]))
            _props(
                entity,
                row,
                headSign="trip_headsign",
                shortName="trip_short_name",
                block="block_id",
                wheelChairAccessible="wheelchair_accessible",
                bikesAllowed="bikes_allowed",
            )
            if not is_missing(row.get("direction_id")):
                entity["direction"] = _property(convert(row["direction_id"], "integer"))
            return entity

        return self._convert("trips", build)

    def services(self) -> Iterator[dict[str, Any]]:
        """One GtfsService per service id of calendar.txt and calendar_dates.txt."""
        seen: dict[str, None] = {}
        for table in ("calendar", "calendar_dates"):
            for row in self.rows(table):
                if not is_missing(row.get("service_id")):
                    seen.setdefault(row["service_id"], None)
        operator = self._sole_agency()
        for service in seen:
            entity = _entity(self.urn("GtfsService", service), "GtfsService")
            entity["name"] = _property(service)
            if operator:
                entity["operatedBy"] = _relationship(operator)
            yield entity

    def calendar_rules(self) -> Iterator[dict[str, Any]]:
        """GtfsCalendarRule entities (calendar.txt)."""

        def build(row: dict[str, str]) -> dict[str, Any]:
            entity = _entity(self.urn("GtfsCalendarRule", row["service_id"]), "GtfsCalendarRule")
            entity["hasService"] = _relationship(self.urn("GtfsService", row["service_id"]))
            for day in WEEKDAYS:
                entity[day] = _property(convert(row[day], "boolean"))
            entity["startDate"] = _property(convert(row["start_date"], "date"))
            entity["endDate"] = _property(convert(row["end_date"], "date"))
            return entity

        return self._convert("calendar", build)

    def calendar_date_rules(self) -> Iterator[dict[str, Any]]:
        """GtfsCalendarDateRule entities (calendar_dates.txt)."""

        def build(row: dict[str, str]) -> dict[str, Any]:
            key = f"{row['service_id']}:{row['date']}"
            entity = _entity(self.urn("GtfsCalendarDateRule", key), "GtfsCalendarDateRule")
            entity["hasService"] = _relationship(self.urn("GtfsService", row["service_id"]))
            entity["appliesOn"] = _property(convert(row["date"], "date"))
            entity["exceptionType"] = _property(row["exception_type"].strip())
            return entity

        return self._convert("calendar_dates", build)

    def stop_times(self) -> Iterator[dict[str, Any]]:
        """GtfsStopTime entities (stop_times.txt; large feeds hold millions)."""

        def build(row: dict[str, str]) -> dict[str, Any]:
            sequence = convert(row["stop_sequence"], "integer")
            key = f"{row['trip_id']}:{sequence}"
            entity = _entity(self.urn("GtfsStopTime", key), "GtfsStopTime")
            entity["hasTrip"] = _relationship(self.urn("GtfsTrip", row["trip_id"]))
            entity["hasStop"] = _relationship(self.urn("GtfsStop", row["stop_id"]))
            entity["stopSequence"] = _property(sequence)
            _props(
                entity,
                row,
                arrivalTime="arrival_time",
                departureTime="departure_time",
                stopHeadsign="stop_headsign",
                pickupType="pickup_type",
                dropOffType="drop_off_type",
            )
            if not is_missing(row.get("shape_dist_traveled")):
                distance = convert(row["shape_dist_traveled"], "number")
                entity["distanceTravelled"] = _property(distance)
            return entity

        return self._convert("stop_times", build)


def _clean_rows(handle: io.TextIOBase | Any) -> Iterator[dict[str, str]]:
    for row in csv.DictReader(handle):
        yield {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}


def _entity(entity_id: str, entity_type: str) -> dict[str, Any]:
    return {"id": entity_id, "type": entity_type}


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _relationship(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def _props(entity: dict[str, Any], row: dict[str, str], **columns: str) -> None:
    """Copy non-empty text columns as Properties (attribute name = column name)."""
    for name, column in columns.items():
        value = row.get(column)
        if not is_missing(value):
            entity[name] = _property(value)


def _point(row: dict[str, str]) -> dict[str, Any]:
    lat, lon = (
        convert(row.get("stop_lat", ""), "number"),
        convert(row.get("stop_lon", ""), "number"),
    )
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueConversionError(f"stop coordinates out of range: {lat}, {lon}")
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
