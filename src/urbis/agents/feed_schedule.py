"""The feed service: scheduled imports inside `urbis serve`, their status, runs on request.

Each feed with an interval runs in its own task (at most MAX_CONCURRENT imports at once); a
feed that fails is logged, counted and tried again at its next turn, and never stops the
others. With several worker processes, only the one holding a lock file in `state_dir`
schedules imports, and it shares the feeds' status with the others through a status file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from urbis.agents.feed_check import CheckResult, check_feed
from urbis.agents.feed_definition import FeedDefinition, load_folder
from urbis.agents.feed_fetch import Validators
from urbis.agents.feed_status import FeedState, read_shared, status_json, write_shared
from urbis.agents.feeds import ProgressFn, RunReport, failed_report, run_feed
from urbis.broker.batch import BatchService
from urbis.broker.container import Broker
from urbis.broker.contexts import ContextService
from urbis.context.actor import Actor
from urbis.context.errors import NgsiError, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.security.policy import (
    ENTITIES_WRITE,
    FEEDS_READ,
    FEEDS_RUN,
    deny,
    internal,
    require,
    requires,
)
from urbis.settings import Settings

log = logging.getLogger("urbis.feeds")
MAX_CONCURRENT = 2  # scheduled imports running at once (they share the store's writer)
LOCK_RETRY = 30.0  # seconds between attempts of a worker to take over the schedule


def build_feed_service(settings: Settings, broker: Broker) -> FeedService:
    """The feed service of a serving process, with the definitions of `feeds_dir`."""
    if not settings.feeds_dir:
        return FeedService(broker.batch, broker.contexts)
    definitions, invalid = load_folder(settings.feeds_dir)
    return FeedService(broker.batch, broker.contexts, definitions, invalid,
                       state_dir_for(settings.store, settings.feeds_dir))


def state_dir_for(store: str, feeds_dir: str) -> Path:
    """The folder where the workers of one deployment share their lock and status."""
    key = hashlib.sha256(f"{store}\0{os.path.abspath(feeds_dir)}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"urbis-feeds-{key}"


@dataclass
class FeedService:
    """Scheduled imports of feed definitions, their last-run status, runs on request."""

    batch: BatchService
    contexts: ContextService
    definitions: Iterable[FeedDefinition] = ()
    invalid: dict[str, str] = field(default_factory=dict)  # file -> why it was refused
    state_dir: Path | None = None
    states: dict[str, FeedState] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _slots: asyncio.Semaphore = field(init=False)
    _lock: IO[bytes] | None = field(init=False, default=None)
    _lock_tried: float = field(init=False, default=float("-inf"))
    _preloaded: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.states = {d.name: FeedState(d) for d in self.definitions}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    # ---- operations ----

    @requires(FEEDS_READ)
    async def list(self, actor: Actor) -> list[dict[str, Any]]:
        """The status of every feed in the caller's tenants (and refused definitions)."""
        shared = self._shared()
        out = [status_json(s, shared.get(name)) for name, s in sorted(self.states.items())
               if _may_use(actor, s.definition.tenant)]
        if actor.tenants is None:
            out += [{"file": path, "status": "invalid", "error": error}
                    for path, error in sorted(self.invalid.items())]
        return out

    @requires(FEEDS_READ)
    async def get(self, actor: Actor, name: str) -> dict[str, Any]:
        """The status of one feed."""
        return status_json(self._state(actor, name), self._shared().get(name))

    @requires(FEEDS_RUN)
    async def run(self, actor: Actor, name: str) -> RunReport:
        """Import a feed now (its source is read even if unchanged); waits for the outcome."""
        state = self._state(actor, name)
        writer = dataclasses.replace(actor, tenant=state.definition.tenant)
        require(writer, ENTITIES_WRITE)
        async with state.lock:
            return await self._execute(state, writer, conditional=False)

    @requires(FEEDS_RUN)
    async def run_definition(self, actor: Actor, definition: FeedDefinition,
                             progress: ProgressFn | None = None) -> RunReport:
        """Import a definition once (not a scheduled feed: `urbis feed run`)."""
        writer = dataclasses.replace(actor, tenant=definition.tenant)
        require(writer, ENTITIES_WRITE)
        tm = await self._term_map(definition)
        if isinstance(tm, RunReport):
            return tm
        return await run_feed(definition, self.batch, writer, tm, progress=progress)

    @requires(FEEDS_READ)
    async def check(self, actor: Actor, definition: FeedDefinition, limit: int = 5
                    ) -> CheckResult:
        """Read and convert a definition's source without writing (`urbis feed check`)."""
        self._preload()
        tm = await self.contexts.term_map(definition.context)
        return await check_feed(definition, tm, limit)

    # ---- the schedule ----

    @internal
    async def start(self) -> None:
        """Start a task per scheduled feed (imports begin at once)."""
        if self._tasks:
            return
        self._preload()
        for state in self.states.values():
            d = state.definition
            if d.enabled and d.every is not None:
                self._tasks.append(asyncio.create_task(self._loop(state), name=f"feed {d.name}"))
        if self._tasks:
            log.info("feeds: %d scheduled imports", len(self._tasks))
        for path, error in self.invalid.items():
            log.error("feed definition %s refused: %s", path, error)

    @internal
    async def close(self) -> None:
        """Stop the scheduled tasks (a running import is cancelled between two batches)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def _loop(self, state: FeedState) -> None:
        every = state.definition.every
        assert every is not None
        while True:
            began = time.monotonic()
            if self._holds_lock():
                state.next_run = None
                async with self._slots, state.lock:
                    actor = Actor(tenant=state.definition.tenant,
                                  principal=f"feed:{state.definition.name}")
                    await self._execute(state, actor, conditional=True)
                wait = max(0.0, began + every - time.monotonic())
            else:
                wait = min(every, LOCK_RETRY)
            state.next_run = time.time() + wait
            await asyncio.sleep(wait)

    async def _execute(self, state: FeedState, actor: Actor, conditional: bool) -> RunReport:
        """One run of a registered feed; whatever happens, the status is updated."""
        state.running = True
        try:
            report = await self._attempt(state, actor, conditional)
        finally:
            state.running = False
        state.record(report)
        self._publish()
        return report

    async def _attempt(self, state: FeedState, actor: Actor, conditional: bool) -> RunReport:
        d = state.definition
        tm = await self._term_map(d)
        if isinstance(tm, RunReport):
            return tm
        previous: Validators | None = state.validators if conditional else None
        return await run_feed(d, self.batch, actor, tm, previous)

    def _preload(self) -> None:
        """Seed the bundled Smart Data Models @contexts once (no network needed for them)."""
        if not self._preloaded:
            self.contexts.preload_bundled()
            self._preloaded = True

    async def _term_map(self, definition: FeedDefinition) -> TermMap | RunReport:
        self._preload()
        try:
            return await self.contexts.term_map(definition.context)
        except NgsiError as exc:
            return failed_report(definition, f"@context: {exc.detail}")

    def _state(self, actor: Actor, name: str) -> FeedState:
        state = self.states.get(name)
        if state is None:
            raise ResourceNotFound(f"no feed named {name!r:.80}")
        if not _may_use(actor, state.definition.tenant):
            raise deny(actor, f"{actor.principal} may not use tenant "
                              f"{state.definition.tenant or '(default)'}")
        return state

    # ---- workers ----

    def _holds_lock(self) -> bool:
        """Whether this process schedules the imports (the first to lock the state file)."""
        if self.state_dir is None or self._lock is not None:
            return True
        if time.monotonic() - self._lock_tried < LOCK_RETRY / 2:
            return False
        self._lock_tried = time.monotonic()
        try:
            import fcntl
        except ImportError:  # not POSIX: one process
            return True
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.state_dir / "lock", "ab")  # noqa: SIM115 (kept open while held)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    def _publish(self) -> None:
        if self.state_dir is not None and self._lock is not None:
            write_shared(self.state_dir, self.states)

    def _shared(self) -> dict[str, Any]:
        """What the scheduling worker published, when another worker schedules."""
        if self.state_dir is None or self._lock is not None:
            return {}
        return read_shared(self.state_dir)


def _may_use(actor: Actor, tenant: str) -> bool:
    return actor.tenants is None or tenant in actor.tenants

