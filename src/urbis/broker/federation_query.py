"""The pages of a distributed query: asking each source for its window, merging the windows.

Each source is asked for the first O+L entities of the query (offset O, limit L) in the
page's order, page by page (`fetch_window`); its answer is kept as it came (JSON objects),
only the entities its registration covers. `assemble` merges the local entities and the
windows: ordered by id alone (the default) and read by a caller who may see every type, only
the entities of the page are decoded and merged, the others are only counted by id; in any
other case everything is decoded, merged and ordered (then paged by the caller). A source
whose entities turn out malformed is dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from urbis.broker.federation import Federation, MalformedAnswer, SourceCall, json_of
from urbis.broker.federation_client import SourceAnswer
from urbis.broker.federation_decode import COUNT_HEADER
from urbis.broker.federation_params import expressible, forwarded_attrs, query_params
from urbis.context.errors import BadRequestData
from urbis.context.federation import (
    PERSISTENT,
    Hop,
    SourceWarning,
    covered_attrs,
    restrict,
)
from urbis.context.federation_merge import merge_lists, order_entities, strip
from urbis.context.federation_parse import relayed_entity
from urbis.context.jsonld import TermMap
from urbis.context.model import Entity
from urbis.context.registration import AUXILIARY, PROXIED, Registration
from urbis.storage.base import EntityQuery

ID_ORDER = [("id", False)]


@dataclass(slots=True)
class Window:
    """What one source gave of a query: its first entities (as JSON), its count, whether
    that is all it has, and the term map to read them with."""

    reg: Registration
    items: list[dict[str, Any]] = field(default_factory=list)
    tm: TermMap | None = None
    count: int | None = None
    complete: bool = True
    warning: SourceWarning | None = None


def decode_items(answer: SourceAnswer, tm: TermMap
                 ) -> tuple[list[dict[str, Any]], int | None, TermMap]:
    """A query answer kept as JSON objects (each with an id), its count, the term map."""
    body = json_of(answer)
    if not isinstance(body, list) or not all(
            type(i) is dict and isinstance(i.get("id"), str) for i in body):
        raise MalformedAnswer("a query answer is not an array of entities")
    count = answer.headers.get(COUNT_HEADER)
    try:
        return body, None if count is None else int(count), tm
    except ValueError:
        raise MalformedAnswer(f"NGSILD-Results-Count {count!r:.20} is not a number") from None


async def fetch_window(federation: Federation, tenant: str, reg: Registration,
                       query: EntityQuery, types: Sequence[str] | None, hop: Hop,
                       page_size: int, caller: tuple[str, TermMap] | None = None) -> Window:
    """The source's first `query.limit` entities (the registration's only), page by page."""
    attrs = forwarded_attrs(query.attrs, covered_attrs(reg, None, types))
    out = Window(reg)
    if attrs is not None and not attrs:
        return out
    size = min(query.limit, page_size)
    while True:
        offset = len(out.items)

        def build(tm: TermMap, offset: int = offset) -> SourceCall:
            use = None if caller is None or expressible(query, tm) else caller
            return SourceCall("GET", "/entities", query_params(
                query, tm if use is None else use[1], limit=size, offset=offset, attrs=attrs),
                context=use)

        reply = await federation.ask(tenant, reg, hop, build, decode_items)
        if not reply.ok:
            return Window(reg, complete=False, warning=reply.warning)
        items, count, out.tm = reply.value
        out.items.extend(i for i in items if _covered(reg, i, out.tm))
        out.count = count if out.count is None else out.count
        if size == 0 or len(items) < size or offset + len(items) >= query.limit:
            break
    out.complete = len(out.items) < query.limit or (
        out.count is not None and out.count <= len(out.items))
    return out


def _covered(reg: Registration, item: dict[str, Any], tm: TermMap) -> bool:
    raw = item.get("type")
    names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    types = [tm.expand_value_iri(n) for n in names if isinstance(n, str)]
    covered = covered_attrs(reg, item["id"], types)
    return covered is None or bool(covered)


@dataclass(slots=True)
class Assembled:
    """The merged entities (ordered), how many distinct ones there are, who failed."""

    entities: list[Entity]
    total: int
    paged: bool  # True: `entities` is the page already
    warnings: list[SourceWarning]


def assemble(local: list[Entity], windows: Sequence[Window], order: Sequence[tuple[str, bool]],
             offset: int, limit: int, lazy: bool) -> Assembled:
    """Merge the local entities and the sources' windows (see the module)."""
    regs = [w.reg for w in windows]
    if any(r.effective_mode in PROXIED for r in regs):
        local = [e for e in (strip(e, proxied_attrs(regs, e)) for e in local) if e is not None]
    wanted: set[str] | None = None
    total = 0
    if lazy and list(order) == ID_ORDER:
        ids = sorted({*(e.id for e in local), *(i["id"] for w in windows for i in w.items)})
        total, wanted = len(ids), set(ids[offset:offset + limit])
        local = [e for e in local if e.id in wanted]
    parts: list[list[Entity]] = []
    aux: list[list[Entity]] = []
    warnings = [w.warning for w in windows if w.warning is not None]
    for window in windows:
        try:
            entities = _decode(window, wanted)
        except BadRequestData as err:
            warnings.append(SourceWarning(PERSISTENT, window.reg.id,
                                          f"unusable answer: {err.detail}"))
            continue
        (aux if window.reg.effective_mode == AUXILIARY else parts).append(entities)
    merged = order_entities(list(merge_lists(local, parts, aux).values()), order)
    return Assembled(merged, total if wanted is not None else len(merged), wanted is not None,
                     warnings)


def _decode(window: Window, wanted: set[str] | None) -> list[Entity]:
    if window.tm is None:
        return []
    entities = [relayed_entity(i, window.tm) for i in window.items
                if wanted is None or i["id"] in wanted]
    return [e for e in (restrict(e, window.reg) for e in entities) if e is not None]


def proxied_attrs(regs: Sequence[Registration], entity: Entity | None) -> frozenset[str] | None:
    """Attributes of the entity held by exclusive / redirect sources (None: all of it)."""
    if entity is None:
        return frozenset()
    names: set[str] = set()
    for reg in regs:
        if reg.effective_mode in PROXIED:
            covered = covered_attrs(reg, entity.id, entity.types)
            if covered is None:
                return None
            names |= covered
    return frozenset(names)


def count_of(local_entities: int, local_count: int | None, window: int,
             windows: Sequence[Window], merged: int) -> int:
    """Exact when every part gave all it has; else the parts' counts less the duplicates
    seen (an upper bound)."""
    local_complete = local_entities < window or (
        local_count is not None and local_count <= local_entities)
    if local_complete and all(w.complete for w in windows):
        return merged
    fetched = local_entities + sum(len(w.items) for w in windows)
    total = (local_count or 0) + sum(w.count or len(w.items) for w in windows)
    return max(total - (fetched - merged), merged)
