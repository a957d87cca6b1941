"""The status of each feed (last run, last success, failures in a row, next run) as operators
read it, and the status file the scheduling worker shares with the other workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_fetch import Validators
from urbis.agents.feeds import RunReport

log = logging.getLogger("urbis.feeds")
STATUS_FILE = "status.json"


@dataclass
class FeedState:
    """What the service knows of one feed between runs."""

    definition: FeedDefinition
    last: RunReport | None = None
    last_success: str | None = None  # startedAt of the last run that did not fail
    failures: int = 0  # failed runs in a row
    validators: Validators | None = None  # of the source at the last successful run
    running: bool = False
    next_run: float | None = None  # Unix time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self, report: RunReport) -> None:
        """Take in the outcome of a run."""
        self.last = report
        if report.outcome == "failed":
            self.failures += 1
            return
        self.failures = 0
        self.last_success = report.started_at
        if report.validators is not None:
            self.validators = report.validators

    def to_json(self) -> dict[str, Any]:
        """The changing part of the status (what the status file shares)."""
        out: dict[str, Any] = {"consecutiveFailures": self.failures}
        if self.last is not None:
            out["lastRun"] = self.last.to_json()
        if self.last_success is not None:
            out["lastSuccessAt"] = self.last_success
        if self.next_run is not None:
            out["nextRunAt"] = _iso(self.next_run)
        if self.running:
            out["running"] = True
        return out


def status_json(state: FeedState, shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """A feed as GET /admin/feeds shows it; `shared`: what the scheduling worker published."""
    d = state.definition
    out: dict[str, Any] = {"name": d.name, "tenant": d.tenant, "format": d.format,
                           "source": d.shown_source, "enabled": d.enabled}
    if d.every is not None:
        out["everySeconds"] = d.every
    if d.origin:
        out["file"] = d.origin
    own = state.to_json()
    if shared and _started(shared) > _started(own):
        own = shared
    out.update(own)
    last = own.get("lastRun")
    out["status"] = ("running" if own.get("running") else last["outcome"] if last
                     else "disabled" if not d.enabled
                     else "never run" if d.every is not None else "on request")
    return out


def write_shared(folder: Path, states: dict[str, FeedState]) -> None:
    """Publish every feed's status for the other workers (atomically replaced)."""
    body = orjson.dumps({name: s.to_json() for name, s in states.items()})
    tmp = folder / f".{STATUS_FILE}.{os.getpid()}"
    try:
        tmp.write_bytes(body)
        tmp.replace(folder / STATUS_FILE)
    except OSError as exc:
        log.warning("feeds: cannot write %s: %s", folder / STATUS_FILE, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_shared(folder: Path) -> dict[str, Any]:
    """What the scheduling worker published (nothing if it has not yet)."""
    try:
        data = orjson.loads((folder / STATUS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _started(status: dict[str, Any]) -> str:
    last = status.get("lastRun")
    return str(last.get("startedAt", "")) if isinstance(last, dict) else ""


def _iso(unix: float) -> str:
    moment = datetime.fromtimestamp(unix, UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"
