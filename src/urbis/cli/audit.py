"""`urbis audit export|verify`: read and check the audit log of a store (as the platform admin)."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import IO, Any

import orjson

from urbis.api.admin_audit import parse_filter
from urbis.cli.common import CliError, add_store_option, opened_broker, run
from urbis.context.actor import Actor
from urbis.context.audit import DECISIONS
from urbis.context.errors import NgsiError
from urbis.settings import Settings

_FILTERS = {"tenant": "tenant", "principal": "principal", "operation": "operation",
            "entity": "entityId", "decision": "decision", "since": "since", "until": "until",
            "limit": "limit"}


def add_parsers(sub: Any) -> None:
    """Register `audit` and its actions."""
    audit = sub.add_parser("audit", help="export and verify the audit log")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    export = actions.add_parser("export", help="write records as NDJSON (one JSON per line)")
    add_store_option(export)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--tenant", help="only this tenant ('' is the default tenant)")
    export.add_argument("--principal", help="only this principal (e.g. apikey:3f9a0c1d2e4b)")
    export.add_argument("--operation", help="only this operation (e.g. EntityService.create)")
    export.add_argument("--entity", help="only records naming this entity id")
    export.add_argument("--decision", choices=DECISIONS, help="only allowed or denied calls")
    export.add_argument("--since", help="records at or after this DateTime")
    export.add_argument("--until", help="records before this DateTime")
    export.add_argument("--limit", help="at most this many records")
    verify = actions.add_parser("verify", help="check the hash chain (exit 1 if broken)")
    add_store_option(verify)
    verify.add_argument("--json", action="store_true", help="the outcome as JSON")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run an `audit` action."""
    return run(_main(settings, args))


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    admin = Actor(principal="cli")
    async with opened_broker(settings) as broker:
        service = broker.audit
        if service is None:
            raise CliError("this store keeps no audit log")
        if args.audit_command == "verify":
            result = await service.verify(admin)
            if args.json:
                print(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
            elif result.ok:
                s = result.state
                print(f"urbis: audit log OK: {result.checked} records verified (positions "
                      f"{s.anchor_pos + 1} to {s.head_pos}), {s.unsealed} not sealed yet; "
                      f"head {s.head_hash or '(empty)'}")
            else:
                print(f"urbis: audit log BROKEN at position {result.position}: "
                      f"{result.problem}", file=sys.stderr)
            return 0 if result.ok else 1
        params = {name: str(getattr(args, attr)) for attr, name in _FILTERS.items()
                  if getattr(args, attr) is not None}
        try:
            selection = parse_filter(params, export=True)
        except NgsiError as err:
            raise CliError(err.detail, 2) from None
        count = 0
        records = await service.export(admin, selection)
        with (open(args.output, "wb") if args.output else nullcontext(sys.stdout.buffer)
              ) as out:
            count = await _write(records, out)
        if args.output:
            print(f"urbis: exported {count} audit records to {args.output}", file=sys.stderr)
    return 0


async def _write(records: Any, out: IO[bytes]) -> int:
    count = 0
    async for record in records:
        out.write(orjson.dumps(record.to_json()) + b"\n")
        count += 1
    out.flush()
    return count
