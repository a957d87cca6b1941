"""A dry run of a feed: read and convert its source, validate every entity as the broker
would, write nothing; report the first entities and the records refused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from urbis.agents.feed_convert import Conversion, Rejection, Rejections
from urbis.agents.feed_definition import FeedDefinition
from urbis.agents.feed_fetch import FetchError, fetch
from urbis.context.errors import NgsiError
from urbis.context.jsonld import TermMap
from urbis.context.normalize import parse_entity


@dataclass
class CheckResult:
    """What a feed's source would give."""

    definition: FeedDefinition
    records: int = 0
    entities: int = 0  # entities that would be written (the same id counted per record)
    sample: list[dict[str, Any]] = field(default_factory=list)  # the first entities
    rejected: Rejections = field(default_factory=Rejections)
    bytes: int = 0
    duration: float = 0.0
    error: str | None = None  # the source could not be read or parsed at all

    @property
    def ok(self) -> bool:
        """Whether the source was read and at least one entity came out of it."""
        return self.error is None and self.entities > 0

    def to_json(self) -> dict[str, Any]:
        """As `urbis feed check --json` prints it."""
        out: dict[str, Any] = {"feed": self.definition.name, "records": self.records,
                               "entities": self.entities, "rejected": self.rejected.count,
                               "bytes": self.bytes, "sample": self.sample,
                               "rejections": [r.to_json() for r in self.rejected.kept]}
        if self.error:
            out["error"] = self.error
        return out


async def check_feed(definition: FeedDefinition, tm: TermMap, limit: int = 5) -> CheckResult:
    """Convert the whole source; keep `limit` entities as a sample."""
    result = CheckResult(definition)
    start = time.perf_counter()
    try:
        payload = await fetch(definition)
        assert payload is not None  # nothing to compare with: never "unchanged"
        result.bytes = payload.size
        conversion = Conversion(definition, payload, result.rejected)
        try:
            for number, entity in conversion.entities():
                _validate(result, tm, number, entity, limit)
        finally:
            conversion.close()
            result.records = conversion.records
    except FetchError as exc:
        result.error = str(exc)
    result.duration = time.perf_counter() - start
    return result


def _validate(result: CheckResult, tm: TermMap, number: int | None, entity: dict[str, Any],
              limit: int) -> None:
    try:
        parse_entity(entity, tm)
    except NgsiError as exc:
        result.rejected.add(Rejection(number, exc.detail, entity.get("id")))
        return
    result.entities += 1
    if len(result.sample) < limit:
        result.sample.append(entity)
