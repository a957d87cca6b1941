"""Outcomes of a distributed write: which part went where, and what failed.

A write shared between this broker and sources has one `Outcome` per part. The HTTP adapter
answers as for a local write when every part succeeded, with the first error when every
part failed, and otherwise 207 with an UpdateResult naming, for each part that failed, its
attributes, the reason and the registration. A source's error comes back as the NGSI-LD
problem it answered (its type and status), one that could not be reached as 503.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from urbis.broker.federation import Reply
from urbis.context import errors
from urbis.context.errors import ERRORS_BASE, NgsiError, ResourceNotFound

T = TypeVar("T")
_KNOWN = {cls.problem: cls for cls in (
    errors.InvalidRequest, errors.BadRequestData, errors.AlreadyExists, errors.Conflict,
    errors.OperationNotSupported, errors.ResourceNotFound, errors.InternalError,
    errors.TooComplexQuery, errors.TooManyResults, errors.LdContextNotAvailable,
    errors.NonexistentTenant, errors.NotAcceptable, errors.UnsupportedMediaType,
    errors.Unauthorized, errors.Forbidden, errors.TooManyRequests)}


_BY_STATUS = {400: errors.BadRequestData, 404: errors.ResourceNotFound}


class SourceUnavailable(NgsiError):
    """A context source the operation needed could not be reached (HTTP 503)."""

    problem, status, title = "ServiceUnavailable", 503, "Context source unavailable"


class PartiallyApplied(NgsiError):
    """A source applied only part of what it was sent (it answered 207)."""

    problem, status, title = "BadRequestData", 400, "Partially applied at the source"


@dataclass(slots=True)
class Outcome:
    """One part of a write: done here (registration None) or at a source."""

    registration_id: str | None
    attrs: list[str] | None  # None: the entity as a whole
    error: NgsiError | None = None


@dataclass(slots=True)
class Written(Generic[T]):
    """The local result (if any part ran here) and every part's outcome."""

    local: T | None = None
    outcomes: list[Outcome] = field(default_factory=list)  # empty: a plain local write

    @property
    def failed(self) -> list[Outcome]:
        """The parts that failed."""
        return [o for o in self.outcomes if o.error is not None]

    def settle_missing(self) -> Written[T]:
        """For deletes: a part that did not have the entity is no failure if another did."""
        if any(o.error is None for o in self.outcomes):
            for o in self.outcomes:
                if isinstance(o.error, ResourceNotFound):
                    o.error = None
        return self


def source_error(reply: Reply) -> NgsiError:
    """The error a failed source part stands for (see the module)."""
    problem = reply.problem or {}
    if reply.status is None:
        reason = reply.warning.text if reply.warning is not None else "unreachable"
        return SourceUnavailable(f"context source {reply.reg.id}: {reason}",
                                 registrationId=reply.reg.id)
    return problem_error(problem, reply.status, reply.reg.id)


def problem_error(problem: dict[str, Any], status: int, registration_id: str) -> NgsiError:
    """The NgsiError of a problem a source answered (its type and status kept)."""
    reason = problem.get("detail") or problem.get("title") or f"answered {status}"
    detail = f"context source {registration_id}: {reason}"
    kind = str(problem.get("type", ""))
    cls: type[NgsiError] | None = (_KNOWN.get(kind.removeprefix(ERRORS_BASE))
                                   if kind.startswith(ERRORS_BASE) else None)
    cls = cls or _BY_STATUS.get(status)  # a source that answered no NGSI-LD problem
    err: NgsiError = (cls or errors.InternalError)(detail, registrationId=registration_id)
    if cls is None or status != cls.status:
        err.status = status if 400 <= status < 600 else 502
    return err


def update_result(written: Written[Any], compact: Any) -> dict[str, Any]:
    """The UpdateResult body of a partly failed write (`compact`: IRI -> term)."""
    updated: list[str] = []
    not_updated: list[dict[str, Any]] = []
    local = written.local
    for outcome in written.outcomes:
        names = ["*"] if outcome.attrs is None else [compact(a) for a in outcome.attrs]
        if outcome.error is None:
            updated_here = getattr(local, "updated", None)
            if outcome.registration_id is None and updated_here is not None:
                names = [compact(a) for a in updated_here]
            updated.extend(n for n in names if n != "*" and n not in updated)
            continue
        for name in names:
            item = {"attributeName": name, "reason": outcome.error.detail}
            if outcome.registration_id is not None:
                item["registrationId"] = outcome.registration_id
            not_updated.append(item)
    for name, reason in getattr(local, "not_updated", ()):
        not_updated.append({"attributeName": compact(name), "reason": reason})
    return {"updated": updated, "notUpdated": not_updated}
