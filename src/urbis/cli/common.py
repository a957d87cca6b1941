"""What the store commands share: exit codes, the --store option, the broker, progress."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlparse

from tqdm import tqdm

from urbis.broker.container import Broker, build_broker
from urbis.broker.maintenance import is_unreachable
from urbis.context.errors import NgsiError
from urbis.settings import Settings

# The rule of the NGSILD-Tenant header (urbis.api.ngsild.common), so that what the command
# line writes can be read over HTTP.
_TENANT = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")


class CliError(Exception):
    """A command failed for a reason the user can act on; no traceback, an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """The --store option every store command takes."""
    parser.add_argument("--store", help="store URL (URBIS_STORE, default "
                                        "sqlite:///./urbis-data/urbis.db)")


def add_tenant_option(parser: argparse.ArgumentParser) -> None:
    """The --tenant option (the NGSILD-Tenant of the API)."""
    parser.add_argument("--tenant", default="", help="tenant (default: the default tenant)")


def check_tenant(tenant: str) -> str:
    """A tenant name the API would accept in NGSILD-Tenant ("" is the default tenant)."""
    if tenant and not _TENANT.fullmatch(tenant):
        raise CliError(f"invalid tenant {tenant!r:.80}: use 1-64 of A-Z a-z 0-9 _ - . :", 2)
    return tenant


def redact(url: str) -> str:
    """A store URL without its password, for messages."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command; a CliError or NgsiError becomes a message on stderr and an exit code."""
    try:
        return asyncio.run(coro)
    except CliError as err:
        print(f"urbis: {err}", file=sys.stderr)
        return err.code
    except NgsiError as err:
        print(f"urbis: {err.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("urbis: interrupted", file=sys.stderr)
        return 130


@asynccontextmanager
async def opened_broker(settings: Settings) -> AsyncIterator[Broker]:
    """The broker on the configured store (migrated); exit code 2 when it cannot be reached."""
    try:
        broker = await build_broker(settings)
    except Exception as exc:
        code = 2 if is_unreachable(exc) else 1
        raise CliError(f"cannot open the store {redact(settings.store)}: {exc}", code) from exc
    try:
        yield broker
    finally:
        await broker.close()


class Progress:
    """A progress bar on stderr (on a terminal, unless quiet), then a one-line summary."""

    def __init__(self, verb: str, total: int | None, quiet: bool) -> None:
        self.verb = verb
        self.count = 0
        self._start = time.monotonic()
        self._bar = tqdm(total=total, desc=verb, unit=" entities", file=sys.stderr,
                         disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True,
                         leave=False)

    def advance(self, done: int) -> None:
        """Count entities done."""
        self.count += done
        self._bar.update(done)

    def note(self, message: str) -> None:
        """A message on stderr that does not break the bar."""
        self._bar.write(f"urbis: {message}", file=sys.stderr)

    def finish(self, extra: str = "") -> None:
        """Close the bar and print the summary: N entities in X s."""
        self._bar.close()
        seconds = time.monotonic() - self._start
        print(f"urbis: {self.verb} {self.count} entities in {seconds:.1f} s{extra}",
              file=sys.stderr, flush=True)
