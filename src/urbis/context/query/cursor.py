"""A small scanning cursor shared by the hand-written scopeQ and type-selection parsers."""

from __future__ import annotations

from urbis.context.errors import BadRequestData


class Cursor:
    """Position in a query text, with whitespace skipping and helpful errors."""

    __slots__ = ("label", "pos", "text")

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.pos = 0

    def fail(self, expected: str) -> BadRequestData:
        """A BadRequestData saying where the text went wrong and what was expected."""
        at = self.pos
        found = repr(self.text[at : at + 12]) if at < len(self.text) else "the end"
        return BadRequestData(
            f"Invalid {self.label} at position {at}: expected {expected}, found {found}"
        )

    def skip_ws(self) -> None:
        """Move past whitespace."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, chars: str) -> bool:
        """Consume one of `chars` (after whitespace) if it comes next."""
        self.skip_ws()
        if self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
            return True
        return False
