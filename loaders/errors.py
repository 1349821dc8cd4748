"""Why a file was not loaded."""

from __future__ import annotations


class Rejected(Exception):
    """A file that cannot become an article document.

    ``reason`` is written for the person who will fix the file: what is wrong
    and, where it helps, what was expected. ``line`` is the file's 1-based line
    number when one is known.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason
