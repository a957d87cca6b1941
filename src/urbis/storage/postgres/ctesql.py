"""Several write statements as one: each becomes common table expressions of a single WITH.

Only what a journal statement plainly is gets through: one INSERT, UPDATE or DELETE, or a
`WITH name AS (...), ... <INSERT | UPDATE | DELETE | SELECT>` whose CTEs are hoisted (their
names must be unique across the statements combined). Anything the scanner does not fully
understand (dollar quotes, `E''` strings, quoted CTE names, WITH RECURSIVE, `$` other than
parameters) is refused with None, and the caller runs the statements apart instead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

_PARAM = re.compile(r"\$(\d+)")
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_COLUMNS = re.compile(r"\(\s*[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*\s*\)\s*")
_AS = re.compile(r"AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?(?=\()", re.IGNORECASE)
_VERB = re.compile(r"\s*(INSERT|UPDATE|DELETE|SELECT|WITH)\b", re.IGNORECASE)
_UNSAFE = re.compile(r"\$(?!\d)|\bE'|\bRECURSIVE\b", re.IGNORECASE)


def shift(sql: str, by: int) -> str:
    """`sql` with its parameters $n renumbered $(n + by)."""
    return _PARAM.sub(lambda m: f"${int(m[1]) + by}", sql)


def _close(sql: str, start: int) -> int | None:
    """The index just after the parenthesis matching the one at `start`."""
    depth, i, n = 0, start, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = sql.find(c, i + 1)
            while end != -1 and sql.startswith(c * 2, end):  # '' or "" inside: an escape
                end = sql.find(c, end + 2)
            if end == -1:
                return None
            i = end
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            return None  # comments: not worth understanding here
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


@dataclass(slots=True)
class Split:
    """A statement taken apart: its CTEs ("name AS (...)") and what follows them."""

    names: list[str] = field(default_factory=list)
    ctes: list[str] = field(default_factory=list)
    main: str = ""
    verb: str = ""


@functools.lru_cache(maxsize=1024)
def split(sql: str) -> Split | None:
    """The CTEs and main statement of `sql`; None when it is not a plain write.

    Cached: journals send the same few statements with every write (do not change the
    result)."""
    if _UNSAFE.search(sql):
        return None
    verb = _VERB.match(sql)
    if verb is None:
        return None
    out, pos = Split(), verb.end()
    if verb[1].upper() == "WITH":
        while True:
            name = _NAME.match(sql, pos)
            if name is None:
                return None
            pos = name.end()
            columns = _COLUMNS.match(sql, pos)
            pos = columns.end() if columns else pos
            as_ = _AS.match(sql, pos)
            end = _close(sql, as_.end()) if as_ else None
            if as_ is None or end is None:
                return None
            out.names.append(name[1])
            out.ctes.append(sql[name.start(1):end])
            rest = sql[end:].lstrip()
            if not rest.startswith(","):
                break
            pos = len(sql) - len(rest) + 1
        verb = _VERB.match(rest)
        if verb is None or verb[1].upper() == "WITH":
            return None
        out.main = rest
    else:
        if verb[1].upper() == "SELECT":
            return None  # nothing to write, and perhaps a function with effects
        out.main = sql.strip()
    out.main = out.main.rstrip("; \n\t")
    out.verb = verb[1].upper()
    return out if _close("(" + out.main + ")", 0) == len(out.main) + 2 else None


def combine(first: str, args: list[object], statements: list[tuple[str, tuple[object, ...]]],
            final: str) -> tuple[str, list[object]] | None:
    """`WITH first, <each statement's CTEs and main as urbis_j<n>> final`, its parameters.

    `first` is CTE text with parameters $1..$len(args); `final` a SELECT, to which a count
    of each main SELECT is added (a SELECT CTE that nothing reads does not run). None if
    any statement cannot be combined, or if a CTE name of one statement appears in another
    (a CTE name hides a table of that name in the whole statement). The text depends only
    on the statements and their parameter counts, so it is built once per shape (and, being
    the same text each time, asyncpg prepares it once per connection).
    """
    shapes = tuple((sql, len(extra)) for sql, extra in statements)
    sql = _combined(first, len(args), shapes, final)
    if sql is None:
        return None
    values = list(args)
    for _, extra in statements:
        values += extra
    return sql, values


@functools.lru_cache(maxsize=512)
def _combined(first: str, count: int, shapes: tuple[tuple[str, int], ...], final: str
              ) -> str | None:
    parts, selects, offset = [first], [], count
    texts, hoisted = [first], []
    for index, (sql, extra) in enumerate(shapes):
        parsed = split(shift(sql, offset))
        if parsed is None:
            return None
        hoisted.append((len(texts), parsed.names))
        texts.append(sql)
        parts += parsed.ctes
        parts.append(f"urbis_j{index} AS ({parsed.main})")
        if parsed.verb == "SELECT":
            selects.append(f", (SELECT count(*) FROM urbis_j{index})")  # noqa: S608 (ours)
        offset += extra
    for own, names in hoisted:
        others = " ".join(t for i, t in enumerate(texts) if i != own)
        if any(n.startswith("urbis_") or re.search(rf"\b{n}\b", others, re.IGNORECASE)
               for n in names):
            return None
    return "WITH " + ", ".join(parts) + " " + final + "".join(selects)
