"""NGSI-LD Entity Type Selection Language (ETSI GS CIM 009 V1.9.1 clause 4.17).

`A` selects entities of type A, `A,B` and `A|B` either type, `(A;B)` entities of both types,
and `(A;B)|C` combinations of those. AND binds tighter than OR; parentheses group. A type is a
name (clause 4.6.2) or a URI; URIs using `,;()|` cannot be written here (as the spec notes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from urbis.context.errors import BadRequestData, TooComplexQuery
from urbis.context.query.cursor import Cursor

MAX_LENGTH = 4096
MAX_DEPTH = 16
MAX_TYPES = 128

_TYPE = re.compile(r"[^\s,;|()]+")


@dataclass(frozen=True, slots=True)
class TypeName:
    """One entity type, as an expanded IRI."""

    iri: str


@dataclass(frozen=True, slots=True)
class TypeAnd:
    """The entity has every one of the types (`;`)."""

    items: tuple[TypeNode, ...]


@dataclass(frozen=True, slots=True)
class TypeOr:
    """The entity has any of the types (`|` or `,`)."""

    items: tuple[TypeNode, ...]


TypeNode = TypeName | TypeAnd | TypeOr


def _identity(term: str) -> str:
    return term


def parse_type_expr(text: str, expand: Callable[[str], str] = _identity) -> TypeNode:
    """Parse an entity type selection, expanding every type name with `expand`."""
    if len(text) > MAX_LENGTH:
        raise TooComplexQuery(f"type is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid type selection: it is empty")
    parser = _Parser(text, expand)
    node = parser.or_expr()
    parser.skip_ws()
    if parser.pos < len(text):
        raise parser.fail("';', '|', ',' or the end")
    return node


class _Parser(Cursor):
    __slots__ = ("count", "depth", "expand")

    def __init__(self, text: str, expand: Callable[[str], str]) -> None:
        super().__init__(text, "type selection")
        self.expand = expand
        self.depth = self.count = 0

    def or_expr(self) -> TypeNode:
        items = [self.and_expr()]
        while self.take("|,"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else TypeOr(tuple(items))

    def and_expr(self) -> TypeNode:
        items = [self.primary()]
        while self.take(";"):
            items.append(self.primary())
        return items[0] if len(items) == 1 else TypeAnd(tuple(items))

    def primary(self) -> TypeNode:
        if self.take("("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise TooComplexQuery(f"type nests parentheses deeper than {MAX_DEPTH}")
            node = self.or_expr()
            if not self.take(")"):
                raise self.fail("')'")
            self.depth -= 1
            return node
        self.count += 1
        if self.count > MAX_TYPES:
            raise TooComplexQuery(f"type selects more than {MAX_TYPES} types")
        m = _TYPE.match(self.text, self.pos)
        if m is None:
            raise self.fail("an entity type")
        self.pos = m.end()
        return TypeName(self.expand(m.group()))


def type_to_text(node: TypeNode, compact: Callable[[str], str] = _identity) -> str:
    """Canonical text of a type selection (`compact` turns IRIs back into terms)."""
    if isinstance(node, TypeName):
        return compact(node.iri)
    sep = ";" if isinstance(node, TypeAnd) else "|"
    text = sep.join(
        f"({type_to_text(i, compact)})" if isinstance(i, TypeOr) else type_to_text(i, compact)
        for i in node.items
    )
    return f"({text})" if isinstance(node, TypeAnd) else text


def type_names(node: TypeNode) -> set[str]:
    """Every type IRI mentioned in the selection."""
    if isinstance(node, TypeName):
        return {node.iri}
    return set().union(*(type_names(i) for i in node.items))
