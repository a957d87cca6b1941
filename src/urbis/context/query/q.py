"""NGSI-LD Query Language (ETSI GS CIM 009 V1.9.1 clause 4.9): AST, parser and serialiser.

The parser is hand-written recursive descent over compiled regexes: it reports the position and
what was expected, and parses a typical query in 10-50 µs. Attribute names are expanded with the
caller's term expansion; compound-value keys inside `[...]` are not. Beyond the V1.9.1 grammar it
accepts `!attr` (non-existence), quoted patterns (`a~="x|y"`), `[*]` (any member or language) and
bare words as text values (`gender==Male`, EXAMPLE 12); linked-entity paths (`a{b}`) are refused.
Syntax errors are BadRequestData (clause 5.7.2: an invalid q is BadRequestData); queries over the
bounds below are TooComplexQuery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from functools import lru_cache

from urbis.context.errors import BadRequestData, TooComplexQuery
from urbis.context.query.q_ast import (  # noqa: F401  (re-exported)
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_LIST,
    MAX_REGEX,
    MAX_TERMS,
    META_NAMES,
    ORDERED_KINDS,
    WILDCARD,
    And,
    Compare,
    Exists,
    Kind,
    Op,
    Operand,
    Or,
    Path,
    Pattern,
    QNode,
    Range,
    Value,
    ValueList,
)

_A = re.ASCII
_NAME = re.compile(r"[^\W\d]\w*(?:[-:]\w+)*")
_KEY = re.compile(r"[^.\[\]]+")
_OPERATOR = re.compile(r"==|!=|!~=|~=|>=|<=|>|<")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?", _A)
_DATE = re.compile(r"\d{4}-\d\d-\d\d", _A)
_TIME = re.compile(r"\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z?", _A)
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", _A)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s;|),\"]*")
_WORD = re.compile(r"[^\W\d][\w\-]*")
_VALUE_END = re.compile(r"\s*(?:$|[;|),]|\.\.)")
_DT_PARTS = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|[+-]\d\d:?\d\d)?", _A
)
_TIME_PARTS = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?Z?", _A)


@lru_cache(maxsize=4096)
def datetime_key(text: str) -> str | None:
    """A DateTime as sortable UTC text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, or None if it is not one."""
    m = _DT_PARTS.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(sec or 0), micro)
        if zone and zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
            dt = dt - offset if zone[0] == "+" else dt + offset
    except (ValueError, OverflowError):
        return None
    return f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}.{dt.microsecond:06d}Z"


@lru_cache(maxsize=4096)
def time_key(text: str) -> str | None:
    """A Time as sortable text `HH:MM:SS.ffffff`, or None if it is not one."""
    m = _TIME_PARTS.fullmatch(text)
    if m is None:
        return None
    hour, minute, sec, frac = int(m[1]), int(m[2]), int(m[3] or 0), (m[4] or "0")[:6]
    if hour > 23 or minute > 59 or sec > 59:
        return None
    return f"{hour:02d}:{minute:02d}:{sec:02d}.{frac.ljust(6, '0')}"


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a query pattern (Python `re` syntax, unanchored search); BadRequestData if bad."""
    if len(pattern) > MAX_REGEX:
        raise TooComplexQuery(f"Regular expression longer than {MAX_REGEX} characters")
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise BadRequestData(f"Invalid regular expression {pattern!r}: {exc}") from None


def _identity(term: str) -> str:
    return term


def parse_q(
    text: str,
    expand: Callable[[str], str] = _identity,
    *,
    expand_values: Collection[str] = (),
) -> QNode:
    """Parse a q expression; `expand_values` names attributes whose text values are expanded."""
    if len(text) > MAX_LENGTH:
        raise TooComplexQuery(f"q is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid q: the query is empty")
    parser = _Parser(text, expand, frozenset(expand(n) for n in expand_values))
    node = parser.or_expr()
    parser.skip_ws()
    if parser.pos < len(text):
        raise parser.fail("';', '|' or the end of the query")
    return node


class _Parser:
    __slots__ = ("depth", "expand", "expand_values", "pos", "terms", "text")

    def __init__(self, text: str, expand: Callable[[str], str], expand_values: frozenset[str]):
        self.text, self.expand, self.expand_values = text, expand, expand_values
        self.pos = self.depth = self.terms = 0

    def fail(self, expected: str, pos: int | None = None) -> BadRequestData:
        at = self.pos if pos is None else pos
        found = repr(self.text[at : at + 12]) if at < len(self.text) else "the end"
        return BadRequestData(f"Invalid q at position {at}: expected {expected}, found {found}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, char: str) -> bool:
        self.skip_ws()
        if self.text.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def or_expr(self) -> QNode:
        items = [self.and_expr()]
        while self.take("|"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> QNode:
        items = [self.primary()]
        while self.take(";"):
            items.append(self.primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def primary(self) -> QNode:
        if not self.take("("):
            return self.term()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplexQuery(f"q nests parentheses deeper than {MAX_DEPTH}")
        node = self.or_expr()
        if not self.take(")"):
            raise self.fail("')'")
        self.depth -= 1
        return node

    def term(self) -> QNode:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise TooComplexQuery(f"q has more than {MAX_TERMS} query terms")
        negated = self.take("!")
        self.skip_ws()
        path = self.path()
        self.skip_ws()
        m = _OPERATOR.match(self.text, self.pos)
        if m is None:
            return Exists(path, negated)
        if negated:
            raise self.fail("';', '|', ')' or the end ('!' only negates existence)")
        self.pos = m.end()
        if m.group() in ("~=", "!~="):
            return Pattern(path, self.regex(), m.group() == "!~=")
        op = Op(m.group())
        return Compare(path, op, self.operand(op, path))

    def expect(self, regex: re.Pattern[str], expected: str) -> str:
        m = regex.match(self.text, self.pos)
        if m is None:
            raise self.fail(expected)
        self.pos = m.end()
        return m.group()

    def path(self) -> Path:
        start = self.pos
        names = [self.expect(_NAME, "an attribute name")]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            names.append(self.expect(_NAME, "an attribute name"))
        if self.text.startswith("{", self.pos):
            raise BadRequestData(
                f"Invalid q at position {self.pos}: linked-entity queries (attr{{...}}) "
                "are not supported"
            )
        keys: list[str] = []
        while self.text.startswith("[", self.pos):
            self.pos += 1
            keys.extend(self.keys())
        meta = names.pop() if len(names) > 1 and names[-1] in META_NAMES else None
        if any(n in META_NAMES for n in names[1:]) or (meta and keys):
            raise BadRequestData(
                f"Invalid q at position {start}: {', '.join(sorted(META_NAMES))} "
                "can only be the last segment of an attribute path"
            )
        expand = self.expand
        return Path(expand(names[0]), tuple(expand(n) for n in names[1:]), meta, tuple(keys))

    def keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            keys.append(self.expect(_KEY, "a member name"))
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return keys
            if not self.text.startswith(".", self.pos):
                raise self.fail("'.' or ']'")
            self.pos += 1

    def regex(self) -> str:
        self.skip_ws()
        start = self.pos
        if self.text.startswith('"', self.pos):
            pattern = self.quoted()
        else:
            self.pos = _regex_end(self.text, self.pos)
            pattern = self.text[start : self.pos]
        if not pattern:
            raise self.fail("a regular expression", start)
        try:
            compile_regex(pattern)
        except BadRequestData as exc:
            raise BadRequestData(f"Invalid q at position {start}: {exc.detail}") from None
        return pattern

    def quoted(self) -> str:
        m = _QUOTED.match(self.text, self.pos)
        if m is None:
            raise self.fail('a closing \'"\'')
        try:
            decoded: str = json.loads(m.group(), strict=False)
        except ValueError as exc:
            raise self.fail(f"a valid JSON string ({exc.args[0]})") from None
        self.pos = m.end()
        return decoded

    def operand(self, op: Op, path: Path) -> Operand:
        start = self.pos
        first = self.value(path)
        if self.take(".."):
            low, high = first, self.value(path)
            if op not in (Op.EQ, Op.NE):
                raise self.fail("a single value (ranges need == or !=)", start)
            if not (low.kind in ORDERED_KINDS and value_class(low) == value_class(high)):
                raise self.fail("two numbers, strings, dates, times or date-times", start)
            return Range(low, high)
        if not self.text.startswith(",", self.pos):
            if op not in (Op.EQ, Op.NE) and first.kind not in ORDERED_KINDS:
                raise self.fail('a number, "string", date, time or date-time', start)
            return first
        if op not in (Op.EQ, Op.NE):
            raise self.fail("a single value (lists need == or !=)", start)
        values = [first]
        while self.take(","):
            values.append(self.value(path))
            if len(values) > MAX_LIST:
                raise TooComplexQuery(f"q has a list of more than {MAX_LIST} values")
        return ValueList(tuple(values))

    def value(self, path: Path) -> Value:
        self.skip_ws()
        start = self.pos
        value = self.literal()
        if _VALUE_END.match(self.text, self.pos) is None:
            raise self.fail("';', '|', ')', ',' or '..' after the value")
        if path.attr in self.expand_values and value.kind in (Kind.STRING, Kind.TERM, Kind.URI):
            return Value(Kind.STRING, self.expand(str(value.value)))
        check = _CHECKS.get(value.kind)
        if check is not None and check(str(value.value)) is None:
            raise self.fail(f"a valid {value.kind.value}", start)
        return value

    def literal(self) -> Value:
        text, pos = self.text, self.pos
        if text.startswith('"', pos):
            return Value(Kind.STRING, self.quoted())
        for regex, kind in ((_DATETIME, Kind.DATETIME), (_DATE, Kind.DATE), (_TIME, Kind.TIME)):
            m = regex.match(text, pos)
            if m is not None:
                self.pos = m.end()
                return Value(kind, m.group())
        m = _NUMBER.match(text, pos)
        if m is not None:
            return self.number(m)
        m = _URI.match(text, pos) or _WORD.match(text, pos)
        if m is None:
            raise self.fail('a value (number, "string", true, false, date, time or URI)')
        self.pos = m.end()
        word = m.group()
        if word in ("true", "false"):
            return Value(Kind.BOOL, word == "true")
        return Value(Kind.URI if ":" in word else Kind.TERM, word)

    def number(self, m: re.Match[str]) -> Value:
        self.pos = m.end()
        if m.group(1) is None and m.group(2) is None:
            return Value(Kind.NUMBER, int(m.group()))
        number = float(m.group())
        if number in (float("inf"), float("-inf")):
            raise self.fail("a number within range", m.start())
        return Value(Kind.NUMBER, number)


def date_key(text: str) -> str | None:
    """The Date itself if it is a valid `YYYY-MM-DD`, else None."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return None
    return text if len(text) == 10 else None


_CHECKS: dict[Kind, Callable[[str], str | None]] = {
    Kind.DATETIME: datetime_key,
    Kind.DATE: date_key,
    Kind.TIME: time_key,
}


def _regex_end(text: str, pos: int) -> int:
    """End of an unquoted pattern: the first `;`, `|` or `)` outside its own groups and classes."""
    depth, in_class, n = 0, False, len(text)
    while pos < n:
        char = text[pos]
        if char == "\\":
            pos += 1
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True  # a `]` right after `[` or `[^` is literal
            pos += 2 if text.startswith("^]", pos + 1) else int(text.startswith("]", pos + 1))
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return pos
            depth -= 1
        elif char in ";|" and depth == 0:
            return pos
        pos += 1
    return min(pos, n)


def value_class(value: Value) -> str:
    """The data type a value compares with: number, bool, datetime, time or text."""
    kind = value.kind
    if kind in (Kind.NUMBER, Kind.BOOL, Kind.DATETIME, Kind.TIME):
        return kind.value
    return "text"


def to_text(node: QNode, compact: Callable[[str], str] = _identity) -> str:
    """Canonical q text of an AST (`compact` turns IRIs back into terms)."""
    if isinstance(node, And | Or):
        sep = ";" if isinstance(node, And) else "|"
        return sep.join(_child_text(item, node, compact) for item in node.items)
    if isinstance(node, Exists):
        return ("!" if node.negated else "") + path_text(node.path, compact)
    if isinstance(node, Pattern):
        op = "!~=" if node.negated else "~="
        return path_text(node.path, compact) + op + json.dumps(node.regex, ensure_ascii=False)
    return path_text(node.path, compact) + node.op.value + operand_text(node.operand)


def _child_text(item: QNode, parent: And | Or, compact: Callable[[str], str]) -> str:
    text = to_text(item, compact)
    nested = isinstance(item, Or) or (isinstance(item, And) and isinstance(parent, And))
    return f"({text})" if nested else text


def path_text(path: Path, compact: Callable[[str], str] = _identity) -> str:
    """The q text of an attribute path."""
    text = ".".join([compact(path.attr), *(compact(s) for s in path.sub)])
    if path.meta:
        text += "." + path.meta
    return text + (f"[{'.'.join(path.keys)}]" if path.keys else "")


def operand_text(operand: Operand) -> str:
    """The q text of a value, list or range."""
    if isinstance(operand, Range):
        return f"{value_text(operand.low)}..{value_text(operand.high)}"
    if isinstance(operand, ValueList):
        return ",".join(value_text(v) for v in operand.values)
    return value_text(operand)


def value_text(value: Value) -> str:
    """The q text of one literal."""
    raw = value.value
    if value.kind is Kind.STRING:
        return json.dumps(raw, ensure_ascii=False)
    if value.kind is Kind.BOOL:
        return "true" if raw else "false"
    if value.kind is Kind.NUMBER:
        return repr(raw)
    return str(raw)
