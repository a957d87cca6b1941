"""One import of a feed: fetch the source, convert it, write the entities in batches.

Entities are written through the broker's batch upsert, `definition.batch` per transaction
(never one per entity); each entity is written whole or refused whole, with its reason. The
outcome of a run is a RunReport: ok, partial (some records refused), unchanged (the source did
not change since the last successful run) or failed (nothing could be read, or a write
failed as a whole). It is logged and counted in the Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from urbis.agents.feed_convert import Conversion, Rejection, Rejections
from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_fetch import FetchError, Validators, fetch
from urbis.broker.batch import BatchService
from urbis.context.actor import Actor
from urbis.context.errors import NgsiError
from urbis.context.jsonld import TermMap
from urbis.observability.metrics import (
    FEED_DURATION,
    FEED_ENTITIES,
    FEED_LAST_SUCCESS,
    FEED_RUNS,
)

log = logging.getLogger("urbis.feeds")
T = TypeVar("T")
OUTCOMES = ("ok", "partial", "unchanged", "failed")
# Called after each batch with (entities written so far, records refused so far).
ProgressFn = Callable[[int, int], None]


@dataclass
class RunReport:
    """What one run of a feed did."""

    feed: str
    started_at: str
    outcome: str = "failed"
    duration: float = 0.0
    records: int = 0  # records read (rows, objects, features; GTFS rows)
    written: int = 0  # entities written (created or updated)
    created: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)  # the first ones
    error: str | None = None
    bytes: int = 0
    validators: Validators | None = None  # of the source, when it was read

    def to_json(self) -> dict[str, Any]:
        """As the admin API shows it."""
        out: dict[str, Any] = {
            "outcome": self.outcome, "startedAt": self.started_at,
            "durationSeconds": round(self.duration, 3), "records": self.records,
            "written": self.written, "created": self.created, "rejected": self.rejected,
            "bytes": self.bytes,
        }
        if self.rejections:
            out["rejections"] = [r.to_json() for r in self.rejections]
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class _Writer:
    """Entities gathered into batches and upserted, one transaction per batch."""

    batch: BatchService
    actor: Actor
    tm: TermMap
    definition: FeedDefinition
    rejected: Rejections
    progress: ProgressFn | None = None
    written: int = 0
    created: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    numbers: dict[str, int | None] = field(default_factory=dict)

    async def add(self, number: int | None, entity: dict[str, Any]) -> None:
        """Queue one entity; the batch is written when full."""
        self.items.append(entity)
        self.numbers[entity["id"]] = number
        if len(self.items) >= self.definition.batch:
            await self.flush()

    async def flush(self) -> None:
        """Write the queued entities in one transaction."""
        if not self.items:
            return
        update = self.definition.mode == "update"
        result = await self.batch.upsert(self.actor, self.items, self.tm, update)
        for eid, err in result.errors:
            self.rejected.add(Rejection(self.numbers.get(eid), err.detail, eid))
        self.written += len(result.success)
        self.created += len(result.created)
        self.items, self.numbers = [], {}
        if self.progress is not None:
            self.progress(self.written, self.rejected.count)


async def run_feed(definition: FeedDefinition, batch: BatchService, actor: Actor, tm: TermMap,
                   previous: Validators | None = None, progress: ProgressFn | None = None
                   ) -> RunReport:
    """Import a feed once as `actor` (in the feed's tenant); failures are in the report."""
    report = RunReport(definition.name, _now())
    start = time.perf_counter()
    try:
        await _import(definition, batch, actor, tm, previous, progress, report)
    except (FetchError, NgsiError) as exc:
        report.outcome = "failed"
        report.error = getattr(exc, "detail", None) or str(exc)
    except Exception as exc:  # the store failed, or a bug: this run only
        log.exception("feed %s: unexpected error", definition.name)
        report.outcome = "failed"
        report.error = f"unexpected error: {exc}"
    report.duration = time.perf_counter() - start
    _record(definition, report)
    return report


async def _import(definition: FeedDefinition, batch: BatchService, actor: Actor, tm: TermMap,
                  previous: Validators | None, progress: ProgressFn | None,
                  report: RunReport) -> None:
    payload = await fetch(definition, previous)
    if payload is None:
        report.outcome = "unchanged"
        return
    report.bytes = payload.size
    conversion = Conversion(definition, payload)
    writer = _Writer(batch, actor, tm, definition, conversion.rejected, progress)
    entities = conversion.entities()
    try:  # converted in a worker thread, a batch at a time: the API is served meanwhile
        while chunk := await asyncio.to_thread(_take, entities, definition.batch):
            for number, entity in chunk:
                await writer.add(number, entity)
        await writer.flush()
    finally:
        conversion.close()
        report.records = conversion.records
        report.written, report.created = writer.written, writer.created
        report.rejected = conversion.rejected.count
        report.rejections = conversion.rejected.kept
    report.outcome = "partial" if report.rejected else "ok"
    report.validators = payload.validators


def _take(entities: Iterator[T], size: int) -> list[T]:
    return list(itertools.islice(entities, size))


def failed_report(definition: FeedDefinition, error: str) -> RunReport:
    """The report of a run that failed before reading the source (logged and counted)."""
    report = RunReport(definition.name, _now(), error=error)
    _record(definition, report)
    return report


def _record(definition: FeedDefinition, report: RunReport) -> None:
    """Log the run and count it in the metrics."""
    name = definition.name
    FEED_RUNS.labels(name, report.outcome).inc()
    FEED_DURATION.labels(name).observe(report.duration)
    if report.written:
        FEED_ENTITIES.labels(name, "written").inc(report.written)
    if report.rejected:
        FEED_ENTITIES.labels(name, "rejected").inc(report.rejected)
    if report.outcome != "failed":
        FEED_LAST_SUCCESS.labels(name).set(time.time())
    extra = {"feed": name, "tenant": definition.tenant, "outcome": report.outcome,
             "written": report.written, "rejected": report.rejected,
             "duration": round(report.duration, 3)}
    if report.outcome == "failed":
        log.warning("feed %s failed after %.1f s (%d written): %s", name, report.duration,
                    report.written, report.error, extra=extra)
        return
    log.info("feed %s: %s, %d entities written, %d records rejected in %.1f s", name,
             report.outcome, report.written, report.rejected, report.duration, extra=extra)
    for rejection in report.rejections[:10]:
        log.info("feed %s: record %s rejected: %s", name, rejection.record, rejection.reason,
                 extra={"feed": name, **rejection.to_json()})


def _now() -> str:
    moment = datetime.now(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"
