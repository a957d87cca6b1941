"""`urbis db upgrade`: create or upgrade the schema of a store by its versioned migrations."""

from __future__ import annotations

import argparse

from urbis.broker.maintenance import SchemaError, StoreUnreachable, upgrade_schema
from urbis.cli.common import CliError, add_store_option, redact, run
from urbis.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `db` command and its sub-commands."""
    db = sub.add_parser("db", help="manage the store's schema")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser(
        "upgrade", help="create or upgrade the schema (also done when `serve` starts)")
    add_store_option(upgrade)


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run a `db` sub-command."""
    return run(upgrade(settings.store))


async def upgrade(url: str) -> int:
    """Migrate the store and print its schema version before and after."""
    try:
        done = await upgrade_schema(url)
    except StoreUnreachable as err:
        raise CliError(f"cannot open the store {redact(url)}: {err}", 2) from err
    except SchemaError as err:
        raise CliError(f"cannot upgrade the store {redact(url)}: {err}") from err
    note = " (already up to date)" if done.before == done.after else ""
    print(f"urbis: {redact(url)}: schema version {done.before} -> {done.after}{note}")
    return 0
