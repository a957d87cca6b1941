"""`urbis feed run|check <definition>`: import a feed once, or dry-run its conversion."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import orjson

from urbis.agents.feed_check import CheckResult
from urbis.agents.feed_convert import Rejection
from urbis.agents.feed_definition import FeedDefinition, FeedDefinitionError
from urbis.agents.feed_schedule import FeedService
from urbis.cli.common import (
    CliError,
    Progress,
    add_store_option,
    check_tenant,
    opened_broker,
    run,
)
from urbis.context.actor import Actor
from urbis.settings import Settings

SHOWN = 20  # rejected records printed


def add_parsers(sub: Any) -> None:
    """Register `feed` and its actions."""
    feed = sub.add_parser("feed", help="import departmental files and feeds (connectors)")
    actions = feed.add_subparsers(dest="feed_command", required=True)
    once = actions.add_parser("run", help="import a feed definition once into the store")
    once.add_argument("definition", help="feed definition file (.toml or .json)")
    add_store_option(once)
    once.add_argument("--tenant", help="write into this tenant instead of the definition's")
    once.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    check = actions.add_parser("check", help="validate a definition and dry-run its "
                                             "conversion (writes nothing)")
    check.add_argument("definition", help="feed definition file (.toml or .json)")
    add_store_option(check)
    check.add_argument("--limit", type=int, default=3, help="entities shown (default 3)")
    check.add_argument("--json", action="store_true", help="the outcome as one JSON object")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run a `feed` action."""
    return run(_main(settings, args))


def _definition(args: argparse.Namespace) -> FeedDefinition:
    try:
        definition = FeedDefinition.from_file(args.definition)
    except FeedDefinitionError as exc:
        raise CliError(f"bad feed definition: {exc.detail}", 2) from None
    tenant = getattr(args, "tenant", None)
    if tenant is not None:
        definition = dataclasses.replace(definition, tenant=check_tenant(tenant))
    return definition


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    definition = _definition(args)
    async with opened_broker(settings) as broker:
        service = FeedService(broker.batch, broker.contexts)
        if args.feed_command == "check":
            result = await service.check(Actor(principal="cli"), definition, max(0, args.limit))
            return _print_check(result, args.json)
        return await _run(service, definition, args.quiet)


async def _run(service: FeedService, definition: FeedDefinition, quiet: bool) -> int:
    progress = Progress("imported", None, quiet)
    done = [0]

    def advance(written: int, rejected: int) -> None:
        progress.advance(written - done[0])
        done[0] = written

    report = await service.run_definition(Actor(principal="cli"), definition, advance)
    advance(report.written, report.rejected)
    for rejection in report.rejections[:SHOWN]:
        progress.note(_rejection(rejection))
    if report.rejected > SHOWN:
        progress.note(f"... and {report.rejected - SHOWN} more rejected records")
    extra = f" ({report.created} new); {report.rejected} records rejected"
    progress.finish(extra)
    if report.error:
        print(f"urbis: feed {definition.name} failed: {report.error}", file=sys.stderr)
        return 1
    return 1 if report.rejected else 0


def _print_check(result: CheckResult, as_json: bool) -> int:
    code = 0 if result.ok else 1
    if as_json:
        print(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
        return code
    d = result.definition
    print(f"feed {d.name}: {d.format} from {d.source} into tenant {d.tenant or '(default)'}"
          + (f", every {d.every:g} s" if d.every else ", on request only"))
    if result.error:
        print(f"urbis: the source cannot be imported: {result.error}", file=sys.stderr)
        return 1
    print(f"{result.bytes} bytes, {result.records} records -> {result.entities} entities, "
          f"{result.rejected.count} rejected ({result.duration:.1f} s)")
    for entity in result.sample:
        print(orjson.dumps(entity, option=orjson.OPT_INDENT_2).decode())
    for rejection in result.rejected.kept[:SHOWN]:
        print(_rejection(rejection))
    if result.rejected.count > SHOWN:
        print(f"... and {result.rejected.count - SHOWN} more rejected records")
    return code


def _rejection(rejection: Rejection) -> str:
    where = f"record {rejection.record}" if rejection.record is not None else "entity"
    if rejection.entity_id:
        where += f" ({rejection.entity_id})"
    return f"rejected {where}: {rejection.reason}"
