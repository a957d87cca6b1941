"""The q-language AST (ETSI GS CIM 009 V1.9.1 clause 4.9): values, paths and terms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_LENGTH = 8192
MAX_DEPTH = 32
MAX_TERMS = 256
MAX_LIST = 256
MAX_REGEX = 1024

# Trailing path segments that address a member of the attribute instance itself (EXAMPLE 8).
META_NAMES = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})
WILDCARD = "*"  # `color[*]`: any member (any language of a LanguageProperty)


class Op(StrEnum):
    """Comparison operators."""

    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


class Kind(StrEnum):
    """How a query value was written; decides the data type it is compared with."""

    NUMBER = "number"
    STRING = "string"  # "quoted"
    BOOL = "bool"
    DATETIME = "datetime"  # unquoted, compared temporally
    DATE = "date"
    TIME = "time"  # unquoted, compared temporally
    URI = "uri"  # unquoted
    TERM = "term"  # unquoted bare word, e.g. `gender==Male` (EXAMPLE 12)


ORDERED_KINDS = frozenset({Kind.NUMBER, Kind.STRING, Kind.DATETIME, Kind.DATE, Kind.TIME})


@dataclass(frozen=True, slots=True)
class Value:
    """One literal value."""

    kind: Kind
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class ValueList:
    """`a==1,2,3`: equal to any of the values."""

    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Range:
    """`a==1..5`: between low and high, both included."""

    low: Value
    high: Value


Operand = Value | ValueList | Range


@dataclass(frozen=True, slots=True)
class Path:
    """Attribute path: attribute IRI, sub-attribute IRIs, trailing meta member, compound keys."""

    attr: str
    sub: tuple[str, ...] = ()
    meta: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Exists:
    """`a` (the target element exists) or `!a` (it does not)."""

    path: Path
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """`a<op>operand`."""

    path: Path
    op: Op
    operand: Operand


@dataclass(frozen=True, slots=True)
class Pattern:
    """`a~=regex` or `a!~=regex`."""

    path: Path
    regex: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    """All items hold (`;`)."""

    items: tuple[QNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any item holds (`|`)."""

    items: tuple[QNode, ...]


QNode = And | Or | Exists | Compare | Pattern
