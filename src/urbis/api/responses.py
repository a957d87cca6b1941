"""Response helpers: orjson bodies and NGSI-LD problem details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from urbis.context.errors import NgsiError

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
PROBLEM_JSON = "application/problem+json"


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    media_type: str = JSON,
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=media_type)


def problem_response(error: NgsiError, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 7807 problem+json response for an NGSI-LD error."""
    return json_response(error.to_problem(), error.status, headers, PROBLEM_JSON)
