"""Which part of a write goes where (ETSI GS CIM 009 V1.8.1 clauses 4.3.6, 5.6).

Every registration serving the operation on the entity takes the written attributes it
covers (all of them when it names none). Attributes an exclusive or redirect registration
takes are not written here (clause 4.3.6.3); a redirect registration that covers the whole
entity takes it away from this broker altogether. Inclusive registrations take their
attributes and leave them here too. (Auxiliary registrations never serve writes.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from urbis.context.federation import covered_attrs
from urbis.context.model import Entity
from urbis.context.registration import PROXIED, Registration


@dataclass(frozen=True, slots=True)
class Part:
    """What one source is sent: these attributes (None: the entity as a whole)."""

    reg: Registration
    attrs: frozenset[str] | None


@dataclass(slots=True)
class Split:
    """The parts of a write: the attributes written here, and each source's part."""

    local_attrs: frozenset[str] = frozenset()
    local_entity: bool = True  # False: a source holds the whole entity instead of this broker
    parts: list[Part] = field(default_factory=list)

    def runs_locally(self, entity_level: bool) -> bool:
        """Whether anything is left to do here."""
        return self.local_entity if entity_level else bool(self.local_attrs)


def split_write(attrs: Collection[str] | None, regs: Sequence[Registration], entity_id: str,
                types: Collection[str] | None, *, entity_level: bool) -> Split:
    """Share out a write of `attrs` (None: the whole entity, as a delete) among sources."""
    written = frozenset(attrs or ())
    local = set(written)
    out = Split()
    for reg in regs:
        covered = covered_attrs(reg, entity_id, types)
        if covered is not None and not covered:
            continue  # it does not have this entity
        taken = written if covered is None else covered & written
        if attrs is None:
            out.parts.append(Part(reg, None))
        elif taken or (entity_level and covered is None):
            out.parts.append(Part(reg, taken))
        else:
            continue
        if reg.effective_mode in PROXIED:
            local -= taken
            if covered is None:
                out.local_entity = False
    out.local_attrs = frozenset(local)
    return out


def part_of(fragment: Entity, attrs: frozenset[str] | None) -> Entity:
    """The fragment reduced to some attributes (None: all of them)."""
    if attrs is None:
        return fragment
    return Entity(fragment.id, fragment.types, {k: v for k, v in fragment.attrs.items()
                                                if k in attrs}, fragment.scopes)
