"""`urbis config show`: the effective configuration, where each value came from, secrets masked."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from urbis.settings import Settings, masked


def add_parsers(sub: Any) -> None:
    """Register `config show`."""
    config = sub.add_parser("config", help="inspect the configuration")
    actions = config.add_subparsers(dest="config_command", required=True)
    show = actions.add_parser("show", help="print the effective settings (secrets masked)")
    show.add_argument("--json", action="store_true", help="as one JSON object")


def main(settings: Settings, args: argparse.Namespace, given: dict[str, tuple[Any, str]]
         ) -> int:
    """Print every setting, its value and its source (default, file, variable or flag)."""
    values = masked(settings)
    if args.json:
        sys.stdout.write(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    width = max(len(name) for name in values)
    for name, value in values.items():
        source = given[name][1] if name in given else "default"
        print(f"{name:<{width}}  {value!s:<40}  ({source})")
    return 0
