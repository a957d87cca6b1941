"""Translate query patterns (Python `re` syntax, as `compile_regex` accepts) into PostgreSQL AREs.

`~` in PostgreSQL runs Advanced Regular Expressions, which differ from Python's `re` where it
matters for matching: `.` matches a newline and `$` only the very end (Python: neither without
`(?s)`), `\\b` is a backspace (Python: a word boundary, ARE `\\y`), `\\xhh` takes any number of
hex digits, `{,n}` is no bound, groups inside lookarounds do not count. The translation keeps
Python's meaning for these; `\\d` becomes the explicit set of Unicode decimal digits. Python
constructs with no ARE equivalent (atomic groups, possessive quantifiers, conditionals, scoped
flags, back-references into lookarounds) raise BadRequestData. Remaining differences: Unicode
case folding and the exact `\\w` / `\\s` classes follow the database's locale.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

from urbis.context.errors import BadRequestData
from urbis.context.query.q import compile_regex

_BOUND = re.compile(r"\{(\d*)(,?)(\d*)\}")
_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_OCTAL = re.compile(r"0[0-7]{0,2}|[0-7]{3}")
_CLASS_OCTAL = re.compile(r"[0-7]{1,3}")
_BACKREF = re.compile(r"[1-9][0-9]?")
_HEX = {"x": 2, "u": 4, "U": 8}
_SIMPLE = {"A": r"\A", "Z": r"\Z", "b": r"\y", "B": r"\Y", "s": r"\s", "S": r"\S", "w": r"\w",
           "W": r"\W", "n": r"\n", "t": r"\t", "r": r"\r", "f": r"\f", "v": r"\v", "a": r"\a"}
_ASCII = {"d": "0-9", "w": "A-Za-z0-9_", "s": r" \t\n\r\f\v"}
_NEVER = "(?!)"  # a NUL cannot occur in PostgreSQL text, so a pattern NUL never matches


def to_postgres(pattern: str) -> str:
    """The ARE matching what `re.search(pattern, text)` matches; BadRequestData if none."""
    compile_regex(pattern)  # the same validation (and errors) as the pure evaluator
    return _Translator(pattern).run()


def unsupported(pattern: str, what: str) -> BadRequestData:
    """The error for a Python construct PostgreSQL cannot run."""
    return BadRequestData(f"Regular expression {pattern!r}: {what} is not supported by the "
                          "PostgreSQL store")


@lru_cache(maxsize=1)
def unicode_digits() -> str:
    """The ranges of every Unicode decimal digit (Python's `\\d`), for a bracket expression."""
    found = [ord(c) for c in re.findall(r"\d", "".join(map(chr, range(sys.maxunicode + 1))))]
    ranges: list[tuple[int, int]] = []
    for cp in found:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "".join(f"{_char(a)}-{_char(b)}" for a, b in ranges)


def _char(cp: int) -> str:
    """One character as an ARE escape usable in and out of bracket expressions."""
    if cp == 0:
        return _NEVER
    if chr(cp).isascii() and chr(cp).isalnum():
        return chr(cp)
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.flags = ""
        self.numbers: dict[int, int | None] = {}  # Python group -> ARE group (None: in lookaround)
        self.names: dict[str, int] = {}
        self.stack: list[bool] = []  # per open group: is it a lookaround
        self.python_groups = self.are_groups = 0

    def fail(self, what: str) -> BadRequestData:
        return unsupported(self.src, what)

    def run(self) -> str:
        while (m := _FLAGS.match(self.src, self.pos)) is not None:
            self.flags += m.group(1)
            self.pos = m.end()
        while self.pos < len(self.src):
            self.token()
        return ("(?i)" if "i" in self.flags else "") + "".join(self.out)

    def token(self) -> None:
        char = self.src[self.pos]
        self.pos += 1
        if "x" in self.flags and (char.isspace() or char == "#"):
            if char == "#":
                end = self.src.find("\n", self.pos)
                self.pos = len(self.src) if end < 0 else end + 1
        elif char == "\\":
            self.out.append(self.escape(in_class=False))
        elif char == "[":
            self.bracket()
        elif char == "(":
            self.group()
        elif char == ")":
            self.stack.pop()
            self.out.append(")")
        elif char in "*+?":
            self.out.append(char)
            self.quantifier_suffix()
        elif char == "{":
            self.bound()
        else:
            self.out.append(self.simple(char))

    def simple(self, char: str) -> str:
        if char == ".":
            return "." if "s" in self.flags else "[^\\n]"
        if char == "^":
            return "(?:^|(?<=\\n))" if "m" in self.flags else "^"
        if char == "$":
            return "(?:$|(?=\\n))" if "m" in self.flags else "(?:$|(?=\\n$))"
        return _NEVER if char == "\x00" else char

    def quantifier_suffix(self) -> None:
        if self.src.startswith("+", self.pos):
            raise self.fail("a possessive quantifier")
        if self.src.startswith("?", self.pos):
            self.out.append("?")
            self.pos += 1

    def bound(self) -> None:
        m = _BOUND.match(self.src, self.pos - 1)
        if m is None or m.group() == "{}":
            self.out.append("\\{")
            return
        low, comma, high = m.groups()
        self.pos = m.end()
        self.out.append("{" + (low or "0") + comma + (high if comma else "") + "}")
        self.quantifier_suffix()

    def escape(self, in_class: bool) -> str:
        char = self.src[self.pos]
        self.pos += 1
        if char == "d":
            digits = _ASCII["d"] if "a" in self.flags else unicode_digits()
            return digits if in_class else f"[{digits}]"
        if char in "DSW" and in_class:
            raise self.fail(f"\\{char} inside a character class")
        if char == "D":
            return f"[^{_ASCII['d'] if 'a' in self.flags else unicode_digits()}]"
        if "a" in self.flags and char.lower() in "sw":
            inner = _ASCII[char.lower()]
            return inner if in_class else f"[{'^' if char.isupper() else ''}{inner}]"
        if char == "b" and in_class:
            return "\\b"  # a backspace, in both syntaxes
        if char in _SIMPLE and not (in_class and char in "AZB"):
            return _SIMPLE[char]
        if char in _HEX:
            digits = self.src[self.pos : self.pos + _HEX[char]]
            self.pos += _HEX[char]
            return _char(int(digits, 16))
        if char == "N":
            end = self.src.index("}", self.pos)
            name, self.pos = self.src[self.pos + 1 : end], end + 1
            return _char(ord(unicodedata.lookup(name)))
        if char.isdigit():
            return self.number(char, in_class)
        return _char(ord(char))

    def number(self, first: str, in_class: bool) -> str:
        self.pos -= 1
        octal = (_CLASS_OCTAL if in_class else _OCTAL).match(self.src, self.pos)
        if octal is not None:
            self.pos = octal.end()
            return _char(int(octal.group(), 8))
        m = _BACKREF.match(self.src, self.pos)
        assert m is not None  # compile_regex accepted the pattern
        self.pos = m.end()
        return self.backref(int(m.group()))

    def backref(self, number: int) -> str:
        target = self.numbers.get(number)
        if target is None:
            raise self.fail("a back-reference to a group inside a lookaround")
        return f"\\{target}"

    def bracket(self) -> None:
        parts = ["["]
        if self.src.startswith("^", self.pos):
            parts.append("^")
            self.pos += 1
        if self.src.startswith("]", self.pos):
            parts.append("\\]")
            self.pos += 1
        while self.src[self.pos] != "]":
            char = self.src[self.pos]
            self.pos += 1
            if char == "\\":
                parts.append(self.escape(in_class=True))
            elif char == "\x00":
                raise self.fail("a NUL character in a character class")
            else:
                parts.append("\\[" if char == "[" else char)
        self.pos += 1
        if _NEVER in parts:
            raise self.fail("a NUL character in a character class")
        self.out.append("".join(parts) + "]")

    def group(self) -> None:
        rest = self.src[self.pos :]
        if not rest.startswith("?"):
            return self.open_capture(None)
        for prefix in ("?:", "?=", "?!", "?<=", "?<!"):
            if rest.startswith(prefix):
                self.pos += len(prefix)
                self.stack.append(prefix != "?:")
                self.out.append("(" + prefix)
                return None
        if rest.startswith("?P<"):
            end = self.src.index(">", self.pos)
            name, self.pos = self.src[self.pos + 3 : end], end + 1
            return self.open_capture(name)
        if rest.startswith("?P="):
            end = self.src.index(")", self.pos)
            name, self.pos = self.src[self.pos + 3 : end], end + 1
            self.out.append(self.backref(self.names[name]))
            return None
        if rest.startswith("?#"):
            self.pos = self.src.index(")", self.pos) + 1
            return None
        what = {"?>": "an atomic group", "?(": "a conditional group"}.get(rest[:2], "inline flags")
        raise self.fail(what)

    def open_capture(self, name: str | None) -> None:
        self.python_groups += 1
        if name is not None:
            self.names[name] = self.python_groups
        if any(self.stack):  # AREs do not capture inside lookarounds
            self.numbers[self.python_groups] = None
            self.out.append("(?:")
        else:
            self.are_groups += 1
            self.numbers[self.python_groups] = self.are_groups
            self.out.append("(")
        self.stack.append(False)
