"""Evaluation of the expression AST over a scope of JSON values (`urbis.context.expressions`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from urbis.context.expression_ast import (
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
from urbis.context.expression_functions import (
    TRANSFORMS,
    bounded,
    loose_equal,
    need_number,
    number,
    to_number,
    to_text,
    truthy,
)


def evaluate_node(root: Node, scope: Mapping[str, Any]) -> Any:
    """Evaluate an AST; any failure becomes ExpressionError."""
    try:
        return _json(_eval(root, scope))
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError, IndexError, KeyError) as exc:
        raise ExpressionError(f"expression failed: {type(exc).__name__}") from None


def _json(value: Any) -> Any:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return number(value)
    return value


def _eval(node: Node, scope: Mapping[str, Any]) -> Any:
    match node:
        case Literal(value):
            return value
        case Var(name):
            return scope.get(name)
        case Member(subject, key):
            return _member(_eval(subject, scope), _eval(key, scope))
        case Unary(op, operand):
            value = _eval(operand, scope)
            return not truthy(value) if op == "!" else number(-need_number(value, "-"))
        case Logical(op, left, right):
            first = _eval(left, scope)
            if truthy(first) == (op == "||"):
                return first
            return _eval(right, scope)
        case Conditional(test, then, otherwise):
            return _eval(then if truthy(_eval(test, scope)) else otherwise, scope)
        case Binary(op, left, right):
            return _binary(op, _eval(left, scope), _eval(right, scope))
        case ArrayLit(items):
            return [_eval(item, scope) for item in items]
        case ObjectLit(items):
            return {key: _eval(value, scope) for key, value in items}
        case Transform(name, subject, args):
            values = [_eval(a, scope) for a in args]
            return bounded(TRANSFORMS[name](_eval(subject, scope), *values))
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")


def _member(subject: Any, key: Any) -> Any:
    """Member access on JSON values only; never on Python attributes."""
    if isinstance(subject, dict):
        return subject.get(key) if isinstance(key, str) else None
    if isinstance(subject, list | str):
        if key == "length":
            return len(subject)
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(subject):
            return subject[key]
    return None


def _binary(op: str, a: Any, b: Any) -> Any:
    match op:
        case "+":
            return _add(a, b)
        case "==" | "!=":
            return loose_equal(a, b) == (op == "==")
        case "<" | "<=" | ">" | ">=":
            return _compare(op, a, b)
        case "in":
            if isinstance(b, list):
                return any(loose_equal(a, item) for item in b)
            if isinstance(b, dict):
                return isinstance(a, str) and a in b
            return to_text(a) in to_text(b)
    return _arithmetic(op, need_number(a, op), need_number(b, op))


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str | list | dict) or isinstance(b, str | list | dict):
        return bounded(to_text(a) + to_text(b))
    return number(need_number(a, "+") + need_number(b, "+"))


def _compare(op: str, a: Any, b: Any) -> bool:
    x: Any
    y: Any
    if isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        x, y = to_number(a), to_number(b)
        if x is None or y is None:
            return False  # NaN compares false in JavaScript
    match op:
        case "<":
            return bool(x < y)
        case "<=":
            return bool(x <= y)
        case ">":
            return bool(x > y)
    return bool(x >= y)


def _arithmetic(op: str, x: int | float, y: int | float) -> int | float:
    if op in ("/", "//", "%") and y == 0:
        raise ExpressionError("division by zero")
    match op:
        case "-":
            return number(x - y)
        case "*":
            return number(x * y)
        case "/":
            result = x / y
            return number(int(result) if result.is_integer() and abs(result) < 2**53 else result)
        case "//":
            return number(math.floor(x / y))
        case "%":
            rest = math.fmod(x, y)  # JavaScript `%`: the sign of the dividend
            return number(rest if isinstance(x, float) or isinstance(y, float) else int(rest))
        case "^":
            return _power(x, y)
    raise ExpressionError(f"unknown operator {op}")


def _power(x: int | float, y: int | float) -> int | float:
    try:
        result = math.pow(x, y)  # float: bounded cost, never a huge integer
    except (OverflowError, ValueError):
        raise ExpressionError("number out of range") from None
    if isinstance(x, int) and isinstance(y, int) and y >= 0 and abs(result) < 2**53:
        return int(result)
    return number(result)
