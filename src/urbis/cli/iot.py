"""`urbis iot deadletters`: read the IoT agents' dead-letter log from the store."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from urbis.agents.iot_agent import build_iot_agent
from urbis.cli.common import add_store_option, add_tenant_option, check_tenant, opened_broker, run
from urbis.context.actor import Actor
from urbis.settings import Settings


def add_parsers(sub: Any) -> None:
    """Register `iot` and its actions."""
    iot = sub.add_parser("iot", help="IoT agents: the dead-letter log")
    actions = iot.add_subparsers(dest="iot_command", required=True)
    letters = actions.add_parser("deadletters", help="rejected device measures, newest first "
                                                     "(one JSON object a line)")
    add_store_option(letters)
    add_tenant_option(letters)
    letters.add_argument("--device", help="only this device id")
    letters.add_argument("--reason", help="only this reason (e.g. unknown_device, syntax)")
    letters.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    letters.add_argument("--summary", action="store_true",
                         help="counts by device and reason instead")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run an `iot` action."""
    return run(_main(settings, args))


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    admin = Actor(tenant=check_tenant(args.tenant), principal="cli")
    async with opened_broker(settings) as broker:
        log = build_iot_agent(settings, broker).dead_letters
        if args.summary:
            rows: list[Any] = await log.summary(admin)
        else:
            letters = await log.entries(admin, args.device, args.reason, args.limit)
            rows = [x.to_json() for x in letters]
    for row in rows:
        print(orjson.dumps(row).decode())
    return 0
