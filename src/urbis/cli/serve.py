"""`urbis serve`: run the API with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from urbis.api.app import create_app
from urbis.settings import Settings


def serve(settings: Settings, demo: bool = False) -> int:
    """Run until interrupted."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings, demo=demo)
    print(f"urbis: NGSI-LD API on {settings.public_url}/ngsi-ld/v1/ (store {settings.store})",
          flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, loop="auto", http="auto", lifespan="on")
    return 0
