"""Distributed operations, the pure part (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 6.3.17, 6.3.18).

- `Hop`: where a request has been (its `Via` chain) and whether it must stay local
  (`local=true`); a broker forwards with its own alias added to the chain, and never to a
  source whose alias (or endpoint authority) the chain already holds.
- `covered_attrs` / `restrict`: which attributes of an entity a registration vouches for,
  and what of a source's answer is kept (the entities and attributes it registered).
- `SourceWarning`: one `NGSILD-Warning` value naming a source that did not contribute.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlparse

from urbis.context.model import Entity
from urbis.context.registration import Registration
from urbis.context.registration_match import entity_fits

VIA_PROTOCOL = "1.1"
ALIAS_IRIS = ("https://uri.etsi.org/ngsi-ld/contextSourceAlias",
              "https://uri.etsi.org/ngsi-ld/default-context/contextSourceAlias")
# Warn-codes (IETF RFC 7234 clause 5.5, as NGSI-LD clause 6.3.17 uses them).
TRANSIENT = 199  # the source could not be reached, timed out, or is cooling down
PERSISTENT = 299  # the source answered with an error or with something unusable
_MAX_TEXT = 300


@dataclass(frozen=True, slots=True)
class Hop:
    """The request's place in a federation: the Via chain it carries, and local=true."""

    raw_via: str = ""
    chain: tuple[str, ...] = ()
    local: bool = False

    def seen(self, names: Collection[str]) -> bool:
        """Whether the request went through any of these aliases already."""
        return any(name in self.chain for name in names)

    def via(self, alias: str) -> str:
        """The Via value to forward with: the chain received, then this broker."""
        own = f"{VIA_PROTOCOL} {alias}"
        return f"{self.raw_via}, {own}" if self.raw_via else own


LOCAL = Hop(local=True)
ORIGIN = Hop()


def parse_via(header: str | None, local: bool = False) -> Hop:
    """The Hop of a request from its Via header (RFC 9110 clause 7.6.3) and local flag."""
    if not header:
        return LOCAL if local else ORIGIN
    chain: list[str] = []
    for entry in header.split(","):
        tokens = entry.split()
        if tokens:  # "1.1 alias (comment)": the received-by part is the second token
            chain.append(tokens[1] if len(tokens) > 1 else tokens[0])
    return Hop(header.strip(), tuple(chain), local)


def source_names(reg: Registration) -> frozenset[str]:
    """The names a source may carry in a Via chain: its alias and its endpoint authority."""
    names = {urlparse(reg.endpoint).netloc}
    for iri in ALIAS_IRIS:
        alias = reg.properties.get(iri)
        if isinstance(alias, dict):
            alias = alias.get("value")
        if isinstance(alias, str) and alias:
            names.add(alias)
    return frozenset(names)


def covered_attrs(reg: Registration, entity_id: str | None,
                  types: Collection[str] | None) -> frozenset[str] | None:
    """Attributes the registration covers for such an entity: None for all of them, an empty
    set when it does not cover the entity at all."""
    found: set[str] = set()
    for info in reg.information:
        if info.entities is not None and not any(entity_fits(e, entity_id, types)
                                                 for e in info.entities):
            continue
        names = info.attrs
        if names is None:
            return None
        found.update(names)
    return frozenset(found)


def restrict(entity: Entity, reg: Registration) -> Entity | None:
    """The part of a source's entity its registration vouches for (None: nothing)."""
    names = covered_attrs(reg, entity.id, entity.types)
    if names is None:
        return entity
    if not names:
        return None
    entity.attrs = {k: v for k, v in entity.attrs.items() if k in names}
    return entity


@dataclass(frozen=True, slots=True)
class SourceWarning:
    """Why one source did not contribute, as an NGSILD-Warning header value."""

    code: int
    registration_id: str
    text: str

    def header(self) -> str:
        """`<code> <registration id> "<text>"` (warn-agent: the registration id)."""
        text = " ".join(self.text.replace('"', "'").replace("\\", "/").split())[:_MAX_TEXT]
        value = f'{self.code} {self.registration_id} "{text}"'
        return value.encode("ascii", "replace").decode("ascii")  # header values are ASCII
