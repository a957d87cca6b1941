"""`urbis apikey create|list|revoke`: manage API keys on a store (as the platform admin)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from urbis.cli.common import CliError, add_store_option, opened_broker, run
from urbis.context.actor import ROLES, Actor
from urbis.context.credentials import new_key
from urbis.security.apikeys import KeyRequest
from urbis.settings import Settings


def add_parsers(sub: Any) -> None:
    """Register `apikey` and its actions."""
    keys = sub.add_parser("apikey", help="manage API keys")
    actions = keys.add_subparsers(dest="apikey_command", required=True)
    create = actions.add_parser("create", help="create a key (printed once)")
    add_store_option(create)
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--role", dest="roles", action="append", required=True,
                        choices=ROLES, help="a role (repeat for several)")
    create.add_argument("--tenant", dest="tenants", action="append",
                        help="a tenant it may use (repeat; default: every tenant)")
    create.add_argument("--type", dest="types", action="append",
                        help="an entity type an analyst may read (repeat)")
    create.add_argument("--entity", dest="entities", action="append",
                        help="an entity id (or prefix*) a device may write (repeat)")
    create.add_argument("--department", help="the department of an analyst")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    add_store_option(listing)
    listing.add_argument("--json", action="store_true", help="as JSON")
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    add_store_option(revoke)
    revoke.add_argument("key_id", help="the key's id (the 12 hex digits after urbis_)")
    actions.add_parser("new-secret", help="print a fresh key for URBIS_ADMIN_KEY")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run an `apikey` action."""
    if args.apikey_command == "new-secret":
        print(new_key()[1])
        return 0
    return run(_main(settings, args))


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    admin = Actor(principal="cli")
    async with opened_broker(settings) as broker:
        service = broker.apikeys
        if service is None:
            raise CliError("this store keeps no API keys")
        if args.apikey_command == "create":
            request = KeyRequest(args.name, args.roles, args.tenants, args.types,
                                 args.entities, args.department)
            key, secret = await service.create(admin, request)
            print(f"urbis: created API key {key.id} ({key.name}); it is shown this once:")
            print(secret)
        elif args.apikey_command == "list":
            keys = await service.list(admin)
            if args.json:
                from urbis.api.admin import describe

                print(orjson.dumps([describe(k) for k in keys],
                                   option=orjson.OPT_INDENT_2).decode())
            for key in keys if not args.json else ():
                state = "active" if key.active else f"revoked {key.revoked_at}"
                tenants = ",".join(key.tenants) if key.tenants is not None else "*"
                print(f"{key.id}  {','.join(key.roles):<16} tenants={tenants:<16} "
                      f"{state:<8} {key.name}")
        else:
            await service.revoke(admin, args.key_id)
            print(f"urbis: API key {args.key_id} revoked")
    return 0
