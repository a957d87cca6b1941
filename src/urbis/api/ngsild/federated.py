"""HTTP side of distributed operations: Via and local=true in, NGSILD-Warning and 207 out.

A request's `Via` header and `local` parameter become a `Hop` for the services; sources that
did not contribute to a read are named one `NGSILD-Warning` header each (clause 6.3.17:
`199` could not be reached, timed out or cools down; `299` answered an error or something
unusable); a write whose parts went to sources answers as a local one when each part
succeeded, with the error when every part failed, else 207 with an UpdateResult.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from urbis.api.ngsild.common import RequestContext
from urbis.api.responses import json_response, problem_response
from urbis.broker.federation_outcome import Written, update_result
from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.federation import Hop, SourceWarning, parse_via

WARNING = "NGSILD-Warning"


def hop_of(request: Request, params: Mapping[str, Any] | None = None) -> Hop:
    """The request's Via chain and its `local` flag (a query parameter or Query member)."""
    raw = (params if params is not None else request.query_params).get("local")
    if raw is None or raw is False or str(raw).lower() == "false":
        local = False
    elif raw is True or str(raw).lower() == "true":
        local = True
    else:
        raise BadRequestData(f"local must be true or false, got {raw!r:.50}")
    return parse_via(request.headers.get("via"), local)


def warn(response: Response, warnings: Sequence[SourceWarning]) -> Response:
    """Name each source that did not contribute in an NGSILD-Warning header."""
    for warning in warnings:
        response.headers.append(WARNING, warning.header())
    return response


def not_found(error: NgsiError, warnings: Sequence[SourceWarning]) -> Response:
    """The problem response of a read nobody could answer, with the sources' warnings."""
    return warn(problem_response(error), warnings)


def written_response(written: Written[Any], ctx: RequestContext,
                     done: Callable[[Any], Response]) -> Response:
    """The answer to a write that may have gone to sources (see the module)."""
    failed = written.failed
    if not failed:
        return done(written.local)
    if len(failed) == len(written.outcomes):
        error = failed[0].error
        assert error is not None
        raise error
    return json_response(update_result(written, ctx.tm.compact), 207)
