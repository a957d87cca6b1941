"""NGSI-LD problem types (ETSI GS CIM 009 clause 5.5.2) as exceptions."""

from __future__ import annotations

from typing import Any

ERRORS_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """Base of every error that maps onto an NGSI-LD problem type."""

    problem = "InternalError"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        """The problem type URI."""
        return ERRORS_BASE + self.problem

    def to_problem(self) -> dict[str, Any]:
        """RFC 7807 problem details body."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class InvalidRequest(NgsiError):
    """The request is syntactically malformed (bad JSON, bad parameters)."""

    problem, status, title = "InvalidRequest", 400, "Invalid request"


class BadRequestData(NgsiError):
    """The request is well formed but its content is not acceptable."""

    problem, status, title = "BadRequestData", 400, "Bad request data"


class AlreadyExists(NgsiError):
    """The entity (or other resource) exists already."""

    problem, status, title = "AlreadyExists", 409, "Already exists"


class Conflict(NgsiError):
    """The request conflicts with the current state (e.g. overlapping exclusive registrations)."""

    problem, status, title = "Conflict", 409, "Conflict"


class OperationNotSupported(NgsiError):
    """The operation is not supported."""

    problem, status, title = "OperationNotSupported", 422, "Operation not supported"


class ResourceNotFound(NgsiError):
    """The referred resource has not been found."""

    problem, status, title = "ResourceNotFound", 404, "Resource not found"


class InternalError(NgsiError):
    """An unexpected condition; details are logged, not returned."""

    problem, status, title = "InternalError", 500, "Internal error"


class TooComplexQuery(NgsiError):
    """The query is too complex to be answered."""

    problem, status, title = "TooComplexQuery", 403, "Too complex query"


class TooManyResults(NgsiError):
    """The query yields more results than the broker will return at once."""

    problem, status, title = "TooManyResults", 403, "Too many results"


class LdContextNotAvailable(NgsiError):
    """A JSON-LD @context could not be retrieved."""

    problem, status, title = "LdContextNotAvailable", 503, "LD context not available"


class NonexistentTenant(NgsiError):
    """The tenant addressed by NGSILD-Tenant does not exist."""

    problem, status, title = "NonexistentTenant", 404, "Nonexistent tenant"


class NotAcceptable(NgsiError):
    """None of the media types in Accept can be produced (HTTP 406)."""

    problem, status, title = "NotAcceptable", 406, "Not acceptable"


class UnsupportedMediaType(NgsiError):
    """The request body's media type is not supported (HTTP 415)."""

    problem, status, title = "UnsupportedMediaType", 415, "Unsupported media type"


class ServiceUnavailable(NgsiError):
    """A backing service (the store) is unavailable for now (HTTP 503)."""

    problem, status, title = "ServiceUnavailable", 503, "Service unavailable"


# Access control has no NGSI-LD problem type: urbis names its own (RFC 9457 allows URNs).
URBIS_PROBLEMS = "urn:urbis:problem:"


class Unauthorized(NgsiError):
    """No valid credentials (HTTP 401, with WWW-Authenticate)."""

    problem, status, title = "Unauthorized", 401, "Unauthorized"

    @property
    def type_uri(self) -> str:
        """The problem type URI (urbis's, not ETSI's)."""
        return URBIS_PROBLEMS + self.problem


class Forbidden(NgsiError):
    """Valid credentials that do not permit the operation (HTTP 403)."""

    problem, status, title = "Forbidden", 403, "Forbidden"

    @property
    def type_uri(self) -> str:
        """The problem type URI (urbis's, not ETSI's)."""
        return URBIS_PROBLEMS + self.problem


class TooManyRequests(NgsiError):
    """The caller exceeded its request rate (HTTP 429, with Retry-After)."""

    problem, status, title = "TooManyRequests", 429, "Too many requests"

    @property
    def type_uri(self) -> str:
        """The problem type URI (urbis's, not ETSI's)."""
        return URBIS_PROBLEMS + self.problem
