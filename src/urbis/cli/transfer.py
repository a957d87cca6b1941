"""`urbis export` and `urbis import`: a tenant's entities as NDJSON, one entity per line.

The line format (`urbis.context.transfer`) is normalized NGSI-LD with full IRIs and the
system timestamps, so export then import gives back equal entities, createdAt and modifiedAt
included. Export reads page by page in id order (keyset), import writes batch by batch
through the broker's batch service; neither holds more than a page or a batch in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from urbis.broker.batch import MAX_BATCH
from urbis.broker.container import Broker
from urbis.cli.common import (
    CliError,
    Progress,
    add_store_option,
    add_tenant_option,
    check_tenant,
    opened_broker,
    run,
)
from urbis.context.actor import Actor
from urbis.context.errors import NgsiError
from urbis.context.jsonld import TermMap
from urbis.context.query.types import parse_type_expr
from urbis.context.transfer import dump
from urbis.settings import Settings
from urbis.storage.base import EntityQuery

PAGE = 500


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `export` and `import` commands."""
    out = sub.add_parser("export", help="write a tenant's entities as NDJSON")
    add_store_option(out)
    add_tenant_option(out)
    out.add_argument("--type", dest="types", action="extend", nargs="+", metavar="TYPE",
                     help="only entities of these types (full IRIs, or terms of --context)")
    out.add_argument("--context", help="@context URL that expands the --type names "
                                       "(default: the core @context)")
    out.add_argument("-o", "--output", default="-", help="file to write (default -: stdout)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    into = sub.add_parser("import", help="create or replace entities read as NDJSON")
    add_store_option(into)
    add_tenant_option(into)
    into.add_argument("-i", "--input", default="-", help="file to read (default -: stdin)")
    into.add_argument("--batch", type=_batch_size, default=500,
                      help="entities written per transaction (default 500)")
    into.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run `export` or `import`."""
    if args.command == "export":
        return run(export(settings, args))
    return run(import_(settings, args))


def _batch_size(text: str) -> int:
    size = int(text)
    if not 1 <= size <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_BATCH}")
    return size


# ---- export ----


async def export(settings: Settings, args: argparse.Namespace) -> int:
    """Write every (selected) entity of a tenant, one JSON object per line."""
    actor = Actor(tenant=check_tenant(args.tenant))
    async with opened_broker(settings) as broker:
        query = EntityQuery(type_expr=await _type_expr(broker, args), limit=PAGE)
        total = (await broker.entities.query(actor, replace(query, limit=0, count=True))).count
        progress = Progress("exported", total, args.quiet)
        with _output(args.output) as out:
            after: str | None = None
            while page := await broker.entities.scan(actor, query, after):
                out.write(b"".join(orjson.dumps(dump(e)) + b"\n" for e in page))
                progress.advance(len(page))
                after = page[-1].id
        progress.finish()
    return 0


async def _type_expr(broker: Broker, args: argparse.Namespace) -> Any:
    if not args.types:
        return None
    if args.context:
        broker.contexts.preload_bundled()
    tm = await broker.contexts.term_map(args.context)
    return parse_type_expr(",".join(args.types), tm.expand)


@contextlib.contextmanager
def _output(name: str) -> Iterator[IO[bytes]]:
    """Standard output, or a file that appears under its name only once complete."""
    if name == "-":
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as other tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise CliError("the output was closed before the export finished") from None
        return
    partial = Path(name + ".partial")
    try:
        with partial.open("wb") as out:
            yield out
        partial.replace(name)
    except OSError as exc:
        raise CliError(f"cannot write {name}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


# ---- import ----


async def import_(settings: Settings, args: argparse.Namespace) -> int:
    """Create or replace the entity of every line; report bad lines, skip them, go on."""
    actor = Actor(tenant=check_tenant(args.tenant))
    async with opened_broker(settings) as broker:
        broker.contexts.preload_bundled()
        importer = _Importer(broker, actor, args.batch, Progress("imported", None, args.quiet))
        with _input(args.input) as lines:
            for number, line in enumerate(lines, 1):
                await importer.add(number, line)
        await importer.flush()
        failed = importer.failed
        importer.progress.finish(f"; {failed} lines failed" if failed else "")
    return 1 if failed else 0


@contextlib.contextmanager
def _input(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(name, "rb")  # noqa: SIM115 (closed below, once the error is told apart)
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc}") from exc
    with stream:
        yield stream


@dataclass
class _Importer:
    """Lines gathered into batches; each entity is written whole or not at all."""

    broker: Broker
    actor: Actor
    size: int
    progress: Progress
    failed: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # entity id -> line number
    tm: TermMap | None = None

    async def add(self, number: int, line: bytes) -> None:
        """Queue one line's entity; a batch is written when full."""
        if not line.strip():
            return
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return self.fail(number, f"not JSON ({exc})")
        if not isinstance(item, dict):
            return self.fail(number, "not a JSON object")
        eid = item.setdefault("id", item.get("@id"))
        if not isinstance(eid, str):
            return self.fail(number, "the entity id is missing or not a string")
        try:
            tm = await self.broker.contexts.term_map(item.get("@context"))
        except NgsiError as err:
            return self.fail(number, f"{eid}: {err.detail}")
        # One term map per batch; one line per id, so that each error names its line.
        if tm is not self.tm or eid in self.lines or len(self.items) >= self.size:
            await self.flush()
        self.tm = tm
        self.items.append(item)
        self.lines[eid] = number

    async def flush(self) -> None:
        """Write the queued entities in one transaction."""
        if not self.items or self.tm is None:
            return
        first = min(self.lines.values())
        try:
            result = await self.broker.batch.restore(self.actor, self.items, self.tm)
        except NgsiError as exc:
            raise CliError(f"import stopped at line {first} after {self.progress.count} "
                           f"entities: {exc.detail}") from exc
        for eid, err in result.errors:
            self.fail(self.lines.get(eid, first), f"{eid}: {err.detail}")
        self.progress.advance(len(result.success))
        self.items, self.lines = [], {}

    def fail(self, number: int, reason: str) -> None:
        """Report a line that was skipped."""
        self.failed += 1
        self.progress.note(f"line {number}: {reason}")
