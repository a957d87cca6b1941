"""Turn a fetched source into NGSI-LD entity dicts with urbis.connectors, record by record.

`Conversion.entities()` is a generator, so an import holds one write batch in memory, not the
whole feed; records that do not convert land in `rejected` with their number and reason.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_fetch import FetchError, Payload
from urbis.connectors.gtfs import GtfsError, GtfsFeed
from urbis.connectors.records import RecordError, json_records, map_record

MAX_KEPT = 100  # rejected records kept (with their reason) per run; the rest only counted


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (1 = the first data row or object) or an entity that was not written."""

    record: int | None
    reason: str
    entity_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As the admin API and `urbis feed check --json` show it."""
        out: dict[str, Any] = {"reason": self.reason}
        if self.record is not None:
            out["record"] = self.record
        if self.entity_id is not None:
            out["entityId"] = self.entity_id
        return out


@dataclass
class Rejections:
    """Every rejection counted, the first MAX_KEPT kept."""

    count: int = 0
    kept: list[Rejection] = field(default_factory=list)

    def add(self, rejection: Rejection) -> None:
        """Count one, and keep it while there is room."""
        self.count += 1
        if len(self.kept) < MAX_KEPT:
            self.kept.append(rejection)


@dataclass
class Conversion:
    """The entities of one payload, produced lazily, and the records refused on the way."""

    definition: FeedDefinition
    payload: Payload
    rejected: Rejections = field(default_factory=Rejections)
    records: int = 0
    _tmp: str | None = None

    def entities(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        """(record number, entity) pairs; FetchError if the document cannot be read at all."""
        if self.definition.format == "gtfs":
            yield from self._gtfs()
            return
        if self.definition.order == "observedAt":
            yield from sorted(self._mapped(), key=lambda item: _observed(item[1]))
        else:
            yield from self._mapped()

    def _mapped(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        mapping = self.definition.mapping
        assert mapping is not None
        for number, record in self._records():
            self.records += 1
            if isinstance(record, Rejection):
                self.rejected.add(record)
                continue
            try:
                yield number, map_record(mapping, record, number)
            except RecordError as exc:
                self.rejected.add(Rejection(number, exc.reason))

    def close(self) -> None:
        """Remove the temporary copy of a downloaded GTFS zip, if any."""
        if self._tmp is not None:
            with suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def _records(self) -> Iterator[tuple[int, Mapping[str, Any] | Rejection]]:
        if self.definition.format == "csv":
            yield from csv_rows(self._text(), self.definition.delimiter)
            return
        try:
            document = orjson.loads(self._data())
        except orjson.JSONDecodeError as exc:
            raise FetchError(f"not a JSON document: {exc}") from None
        if self.definition.format == "geojson" and not (
                isinstance(document, dict) and document.get("type") == "FeatureCollection"):
            raise FetchError("a geojson feed must be a GeoJSON FeatureCollection")
        try:
            records = json_records(document, self.definition.records)
        except ValueError as exc:
            where = f" under {self.definition.records!r}" if self.definition.records else ""
            raise FetchError(f"{exc}{where}") from None
        yield from enumerate(records, 1)

    def _data(self) -> bytes:
        if self.payload.data is None:
            raise FetchError("the source is a folder")
        return self.payload.data

    def _text(self) -> str:
        try:
            return self._data().decode(self.definition.encoding)
        except UnicodeDecodeError as exc:
            raise FetchError(f"not {self.definition.encoding} text: {exc}") from None

    def _gtfs(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        path = self.payload.path
        if path is None:  # downloaded: GtfsFeed reads a zip file by name
            fd, self._tmp = tempfile.mkstemp(prefix="urbis-gtfs-", suffix=".zip")
            with os.fdopen(fd, "wb") as out:
                out.write(self._data())
            path = Path(self._tmp)
        try:
            feed = GtfsFeed(path, self.definition.prefix or self.definition.name,
                            source=self.definition.source if self.definition.is_url else None)
        except GtfsError as exc:
            raise FetchError(str(exc)) from None
        try:
            yield from self._gtfs_entities(feed)
        except (zipfile.BadZipFile, zlib.error, csv.Error, UnicodeDecodeError, OSError,
                EOFError) as exc:
            raise FetchError(f"the GTFS feed cannot be read: {exc}") from None

    def _gtfs_entities(self, feed: GtfsFeed) -> Iterator[tuple[int | None, dict[str, Any]]]:
        seen = 0
        for entity in feed.entities(stop_times=self.definition.stop_times):
            self.records += 1
            while seen < len(feed.errors):  # rows refused since the last entity
                self.records += 1
                self.rejected.add(Rejection(feed.errors[seen].index + 1,
                                            feed.errors[seen].reason))
                seen += 1
            yield None, entity
        for error in feed.errors[seen:]:
            self.records += 1
            self.rejected.add(Rejection(error.index + 1, error.reason))


def _observed(entity: dict[str, Any]) -> str:
    """The latest observedAt of an entity's attributes (UTC text sorts as time)."""
    times = [item.get("observedAt", "") for item in entity.values() if isinstance(item, dict)]
    return max(times, default="")


def csv_rows(text: str, delimiter: str = ","
             ) -> Iterator[tuple[int, Mapping[str, Any] | Rejection]]:
    """Numbered CSV rows as dicts; a row whose field count differs from the header's (or
    that the csv module refuses) is a Rejection."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise FetchError(f"the CSV header does not parse: {exc}") from None
    number = 0
    while True:
        number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, Rejection(number, f"not a CSV row: {exc}")
            continue
        if not row:
            number -= 1  # blank lines are not records
            continue
        if len(row) != len(header):
            yield number, Rejection(number, f"{len(row)} fields where the header has "
                                            f"{len(header)}")
            continue
        yield number, dict(zip(header, row, strict=True))
