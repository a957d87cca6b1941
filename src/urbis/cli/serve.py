"""`urbis serve`: run the API with uvicorn, in this process or in several worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from urllib.parse import urlparse

import uvicorn
from starlette.applications import Starlette

from urbis.api.app import create_app, secure
from urbis.broker.container import build_broker
from urbis.broker.samples import load_samples
from urbis.observability import logs
from urbis.observability.metrics import MULTIPROC_ENV
from urbis.settings import Settings, load_settings, settings_env
from urbis.utils.gctune import tune_gc

# Workers are fresh interpreters: uvicorn imports the app by name in each of them.
WORKER_APP = "urbis.cli.serve:worker_app"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app cannot start
log = logging.getLogger("urbis.serve")


def serve(settings: Settings, demo: bool = False) -> int:
    """Run until interrupted; exit code 2 for settings it cannot run, 3 if it cannot start."""
    if settings.workers > 1:
        return serve_workers(settings, demo)
    configure_logging(settings)
    app = create_app(settings, demo=demo, iot_agent=True)
    announce(settings)
    tune_gc()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, loop="auto", http="auto", lifespan="on", log_config=None,
                ssl_certfile=settings.tls_certfile or None,
                ssl_keyfile=settings.tls_keyfile or None)
    return 0


def serve_workers(settings: Settings, demo: bool) -> int:
    """Run `settings.workers` processes sharing the port and the (PostgreSQL) store."""
    if urlparse(settings.store).scheme == "sqlite":
        print(f"urbis: {settings.workers} workers need a postgresql:// store; the embedded "
              "SQLite store has one writer per process and runs a single worker "
              "(use --workers 1)", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:  # once, before the workers start: the schema upgrade, and the demo data if asked
        asyncio.run(_prepare(settings, demo))
    except Exception as exc:  # every worker would fail alike, and uvicorn then exits 0
        print(f"urbis: cannot start: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    os.environ.update(settings_env(settings))  # what each worker's load_settings() reads
    announce(settings)
    with tempfile.TemporaryDirectory(prefix="urbis-metrics-") as metrics_dir:
        # every worker writes its metrics there; a scrape of any worker answers for all
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
        uvicorn.run(WORKER_APP, factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, log_level=settings.log_level, access_log=False,
                    loop="auto", http="auto", lifespan="on", log_config=None,
                    ssl_certfile=settings.tls_certfile or None,
                    ssl_keyfile=settings.tls_keyfile or None)
    return 0


def worker_app() -> Starlette:
    """The app of one worker process, configured by the URBIS_* variables of its parent."""
    settings = load_settings()
    configure_logging(settings)
    app = create_app(settings, iot_agent=True)
    tune_gc()
    return app


def configure_logging(settings: Settings) -> None:
    """Log lines (JSON or text) to standard error at the configured level."""
    logs.configure(settings.log_level, settings.log_format)




def announce(settings: Settings) -> None:
    """Say where the API listens."""
    workers = f"{settings.workers} workers, " if settings.workers > 1 else ""
    print(f"urbis: NGSI-LD API on {settings.public_url}/ngsi-ld/v1/ ({workers}store "
          f"{settings.store})", flush=True)
    scheme = "https" if settings.tls_certfile else "http"
    for port, what in ((settings.iota_port, "IoT agent provisioning (/iot/services, "
                                            "/iot/devices)"),
                       (settings.iota_http_port, "IoT agent HTTP southbound (/iot/json, /iot/d)")):
        if port:
            print(f"urbis: {what} on {scheme}://{settings.host}:{port}", flush=True)


async def _prepare(settings: Settings, demo: bool) -> None:
    broker = await build_broker(settings)
    try:
        await secure(settings, broker)  # the first admin key is printed once, here
        if demo:
            log.info("demo: %d sample entities loaded", await load_samples(broker))
    finally:
        await broker.close()
