"""Why a file was not loaded."""

from __future__ import annotations


class Rejected(Exception):
    """A file that cannot become an article document.

    ``reason`` is written for the person who will fix the file: what is wrong
    and, where it helps, what was expected. ``line`` is the file's 1-based line
    number when one is known. ``field`` is the path of the field the reason is
    about (``related[1].images[0].width``), when it is about one field; the
    parser finds the line from it.
    """

    def __init__(self, reason: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.field = field

    @classmethod
    def at(cls, field: str, problem: str) -> Rejected:
        """A reason about one field, which it names first: ``title is missing``."""
        return cls(f"{field} {problem}", field=field)

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason
