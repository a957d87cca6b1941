"""A safe expression language for derived attribute values (the FIWARE IoT agents' JEXL subset).

    temperature * 1.8 + 32                      arithmetic: + - * / // % ^ (power)
    level > 80 ? "full" : "ok"                  comparison, ternary, && || !, `in`
    "Room " + room|uppercase                    text concatenation, transforms
    location.coordinates[0]                     member access on JSON objects and arrays
    pressure|toFixed(2), round(t, 1)            whitelisted transforms (also as functions)

Text is parsed once (lark, LALR) into a small immutable AST and cached; evaluation walks that
AST over a scope of JSON values (the device's measures). There is no `eval`, no attribute access
on Python objects, no loops; cost is bounded by MAX_LENGTH, MAX_NODES, MAX_DEPTH and MAX_STRING.
Every failure is an ExpressionError (a BadRequestData), never another exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from urbis.context.expression_ast import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    MAX_NUMBER_LITERAL,
    ArrayLit,
    Binary,
    Conditional,
    ExpressionError,
    Literal,
    Logical,
    Member,
    Node,
    ObjectLit,
    Transform,
    Unary,
    Var,
)
from urbis.context.expression_eval import evaluate_node
from urbis.context.expression_functions import ALIASES, TRANSFORMS

GRAMMAR = r"""
?start: expr
?expr: or_expr "?" expr ":" expr -> cond
     | or_expr
?or_expr: or_expr "||" and_expr -> or_
        | and_expr
?and_expr: and_expr "&&" comparison -> and_
         | comparison
?comparison: comparison CMP sum -> binary
           | comparison IN sum -> binary
           | sum
?sum: sum ADD product -> binary
    | product
?product: product MUL power -> binary
        | power
?power: unary POW power -> binary
      | unary
?unary: "!" unary -> not_
      | "-" unary -> neg
      | postfix
?postfix: postfix "." NAME -> member
        | postfix "[" expr "]" -> index
        | postfix "|" NAME ["(" [args] ")"] -> transform
        | atom
?atom: NUMBER -> number
     | STRING -> string
     | "true" -> true
     | "false" -> false
     | "null" -> null
     | NAME -> var
     | NAME "(" [args] ")" -> call
     | "[" [args] "]" -> array
     | "{" [pair ("," pair)*] "}" -> object
     | "(" expr ")"
args: expr ("," expr)*
pair: (NAME | STRING) ":" expr
CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
IN: "in"
ADD: "+" | "-"
MUL: "*" | "//" | "/" | "%"
POW: "^"
NAME: /[A-Za-z_$][A-Za-z0-9_$]*/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
%ignore /[ \t\r\n]+/
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: its source, AST and the scope names it reads."""

    source: str
    root: Node
    names: frozenset[str]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate over `scope` (name -> JSON value); missing names are null."""
        return evaluate_node(self.root, scope)


@lru_cache(maxsize=2048)
def compile_expression(text: str) -> Expression:
    """Parse an expression (cached); ExpressionError if it is invalid or over the limits."""
    if not isinstance(text, str):
        raise ExpressionError("an expression is text")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        where = getattr(exc, "pos_in_stream", None)
        raise ExpressionError(f"invalid expression at position {where}: {text[:60]!r}") from None
    except LarkError as exc:
        raise ExpressionError(f"invalid expression: {exc}") from None
    _check_size(tree)
    names: set[str] = set()
    root = _build(tree, names)
    return Expression(text, root, frozenset(names))


def evaluate(text: str, scope: Mapping[str, Any]) -> Any:
    """Parse (cached) and evaluate an expression."""
    return compile_expression(text).evaluate(scope)


def _check_size(tree: Tree[Token] | Token) -> None:
    """Bound nodes and depth, walking iteratively so hostile nesting cannot exhaust the stack."""
    count, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH}")
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children if child is not None)


def _build(node: Tree[Token] | Token, names: set[str]) -> Node:
    if isinstance(node, Token):  # only reached through a bare atom rule alias
        raise ExpressionError(f"unexpected {node.type}")
    kids: list[Any] = node.children
    rule = node.data
    match rule:
        case "number":
            return Literal(_number(kids[0]))
        case "string":
            return Literal(_string(kids[0]))
        case "true" | "false" | "null":
            return Literal({"true": True, "false": False, "null": None}[rule])
        case "var":
            names.add(str(kids[0]))
            return Var(str(kids[0]))
        case "binary":
            return Binary(str(kids[1]), _build(kids[0], names), _build(kids[2], names))
        case "or_" | "and_":
            op = "||" if rule == "or_" else "&&"
            return Logical(op, _build(kids[0], names), _build(kids[1], names))
        case "not_" | "neg":
            return Unary("!" if rule == "not_" else "-", _build(kids[0], names))
        case "cond":
            test, then, other = (_build(k, names) for k in kids)
            return Conditional(test, then, other)
        case "member":
            return Member(_build(kids[0], names), Literal(str(kids[1])))
        case "index":
            return Member(_build(kids[0], names), _build(kids[1], names))
        case "transform":
            return Transform(_function(kids[1]), _build(kids[0], names), _args(kids[2], names))
        case "call":
            args = _args(kids[1], names)
            if not args:
                raise ExpressionError(f"{kids[0]}() needs at least one argument")
            return Transform(_function(kids[0]), args[0], args[1:])
        case "array":
            return ArrayLit(_args(kids[0], names))
        case "object":
            return ObjectLit(tuple(_pair(k, names) for k in kids if k is not None))
    raise ExpressionError(f"unsupported construct {rule}")


def _args(node: Any, names: set[str]) -> tuple[Node, ...]:
    if node is None:
        return ()
    return tuple(_build(k, names) for k in node.children)


def _pair(node: Tree[Token], names: set[str]) -> tuple[str, Node]:
    key, value = node.children
    if not isinstance(key, Token):
        raise ExpressionError("an object key is a name or a string")
    text = _string(key) if key.type == "STRING" else str(key)
    return text, _build(value, names)


def _function(name: Token) -> str:
    canonical = ALIASES.get(str(name), str(name))
    if canonical not in TRANSFORMS:
        raise ExpressionError(f"unknown function or transform {str(name)!r}")
    return canonical


def _number(token: Token) -> int | float:
    text = str(token)
    if len(text) > MAX_NUMBER_LITERAL:
        raise ExpressionError("number literal too long")
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise ExpressionError("number literal out of range")
    return value


def _string(token: Token) -> str:
    body = str(token)[1:-1]
    return _ESCAPE.sub(_unescape, body)


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code.startswith("u") and len(code) == 5:
        return chr(int(code[1:], 16))
    return _SIMPLE_ESCAPES.get(code, code)
