"""AST, limits and error of the attribute expression language (see `urbis.context.expressions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from urbis.context.errors import BadRequestData

MAX_LENGTH = 2000
"""Longest expression text accepted."""
MAX_NODES = 300
"""Most AST nodes in one expression."""
MAX_DEPTH = 40
"""Deepest nesting of one expression."""
MAX_STRING = 65_536
"""Longest string (or list) a step of an evaluation may produce."""
MAX_NUMBER_LITERAL = 40
"""Longest number literal (digits) accepted."""


class ExpressionError(BadRequestData):
    """An expression that cannot be parsed or evaluated (BadRequestData when it reaches the API)."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: number, string, boolean or null."""

    value: Any


@dataclass(frozen=True, slots=True)
class Var:
    """A name looked up in the evaluation scope (a measure, `id`, `type`...)."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """`subject.key` or `subject[key]`: a JSON object member, array item or string character."""

    subject: Node
    key: Node


@dataclass(frozen=True, slots=True)
class Unary:
    """`!operand` or `-operand`."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic, comparison and `in`: `left op right`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical:
    """`left && right` or `left || right` (short-circuit, yields an operand as JavaScript does)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Conditional:
    """`test ? then : otherwise`."""

    test: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class ArrayLit:
    """`[a, b, ...]`."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ObjectLit:
    """`{key: value, ...}`."""

    items: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Transform:
    """`subject|name(args)` or `name(subject, args)`: a whitelisted function."""

    name: str
    subject: Node
    args: tuple[Node, ...]


Node = (
    Literal
    | Var
    | Member
    | Unary
    | Binary
    | Logical
    | Conditional
    | ArrayLit
    | ObjectLit
    | Transform
)
