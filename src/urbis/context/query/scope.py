"""NGSI-LD Scope Query Language (ETSI GS CIM 009 V1.9.1 clause 4.19): AST, parser, serialiser.

`/A/B` selects that scope, `/A/#` the scope A and every scope below it, `/#` any scope, and `+`
matches exactly one level. `;` is AND, `|` and `,` are OR; AND binds tighter, parentheses group.
A leading `/` is optional in scopes (clause 4.18), so `/A/B` and `A/B` are the same scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from urbis.context.errors import BadRequestData, TooComplexQuery
from urbis.context.query.cursor import Cursor

MAX_LENGTH = 4096
MAX_DEPTH = 16
MAX_TERMS = 128
PLUS = "+"

_LEVEL = re.compile(r"\w+|\+")


@dataclass(frozen=True, slots=True)
class ScopeTerm:
    """One scope pattern; `descendants` for a trailing `/#`. `levels=()` with `/#` is any scope."""

    levels: tuple[str, ...]
    descendants: bool = False


@dataclass(frozen=True, slots=True)
class ScopeAnd:
    """All items hold (`;`)."""

    items: tuple[ScopeNode, ...]


@dataclass(frozen=True, slots=True)
class ScopeOr:
    """Any item holds (`|` or `,`)."""

    items: tuple[ScopeNode, ...]


ScopeNode = ScopeTerm | ScopeAnd | ScopeOr


def parse_scope_q(text: str) -> ScopeNode:
    """Parse a scopeQ expression."""
    if len(text) > MAX_LENGTH:
        raise TooComplexQuery(f"scopeQ is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid scopeQ: the query is empty")
    parser = _Parser(text)
    node = parser.or_expr()
    parser.skip_ws()
    if parser.pos < len(text):
        raise parser.fail("';', '|', ',' or the end of the query")
    return node


class _Parser(Cursor):
    __slots__ = ("depth", "terms")

    def __init__(self, text: str) -> None:
        super().__init__(text, "scopeQ")
        self.depth = self.terms = 0

    def or_expr(self) -> ScopeNode:
        items = [self.and_expr()]
        while self.take("|,"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else ScopeOr(tuple(items))

    def and_expr(self) -> ScopeNode:
        items = [self.primary()]
        while self.take(";"):
            items.append(self.primary())
        return items[0] if len(items) == 1 else ScopeAnd(tuple(items))

    def primary(self) -> ScopeNode:
        if not self.take("("):
            return self.term()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplexQuery(f"scopeQ nests parentheses deeper than {MAX_DEPTH}")
        node = self.or_expr()
        if not self.take(")"):
            raise self.fail("')'")
        self.depth -= 1
        return node

    def term(self) -> ScopeTerm:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise TooComplexQuery(f"scopeQ has more than {MAX_TERMS} scopes")
        self.skip_ws()
        text = self.text
        if text.startswith("/#", self.pos):
            self.pos += 2
            return ScopeTerm((), True)
        levels: list[str] = []
        if text.startswith("/", self.pos):
            self.pos += 1
        while True:
            m = _LEVEL.match(text, self.pos)
            if m is None:
                raise self.fail("a scope level (letters, digits, '_') or '+'")
            levels.append(m.group())
            self.pos = m.end()
            if text.startswith("/#", self.pos):
                self.pos += 2
                return ScopeTerm(tuple(levels), True)
            if not text.startswith("/", self.pos):
                return ScopeTerm(tuple(levels))
            self.pos += 1


def scope_to_text(node: ScopeNode) -> str:
    """Canonical scopeQ text of an AST."""
    if isinstance(node, ScopeTerm):
        if not node.levels:
            return "/#"
        return "/" + "/".join(node.levels) + ("/#" if node.descendants else "")
    if isinstance(node, ScopeAnd):
        return "(" + ";".join(_grouped(item) for item in node.items) + ")"
    return "|".join(_grouped(item) for item in node.items)


def _grouped(node: ScopeNode) -> str:
    text = scope_to_text(node)
    return f"({text})" if isinstance(node, ScopeOr) else text


def normalize_scope(scope: str) -> str:
    """A scope without its optional leading `/`."""
    return scope[1:] if scope.startswith("/") else scope


def term_matches(term: ScopeTerm, scope: str) -> bool:
    """Whether one entity scope matches one scope pattern."""
    parts = normalize_scope(scope).split("/")
    n = len(term.levels)
    if len(parts) < n or (len(parts) > n and not term.descendants):
        return False
    return all(
        part == level or (level == PLUS and part != "")
        for level, part in zip(term.levels, parts, strict=False)
    )


def term_regex(term: ScopeTerm) -> str:
    """A regular expression over normalized scopes equivalent to `term_matches`."""
    body = "/".join("[^/]+" if lvl == PLUS else re.escape(lvl) for lvl in term.levels)
    return "(?s)^" + body + ("(?:/.*)?\\Z" if term.descendants else "\\Z")
