"""Split an article file into its YAML front matter and Markdown body."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loaders.errors import Rejected

_FENCE = "---"
_FENCE_LINE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Parts:
    front_matter: str
    body: str
    #: File line number of the front matter's first line (after the opening fence).
    first_line: int = 2


def decode(data: bytes) -> str:
    """UTF-8 text with a leading BOM removed and line endings made ``\\n``."""
    if not data.strip():
        raise Rejected("file is empty")
    if b"\x00" in data:
        raise Rejected("file contains NUL bytes: it looks binary, not an article")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Rejected(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
            line=line,
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split(text: str) -> Parts:
    """Front matter is the block between a first line ``---`` and the next line
    that is ``---`` (or YAML's ``...``); whatever follows is the body."""
    first, _, rest = text.partition("\n")
    if first.rstrip() != _FENCE:
        raise Rejected("no front matter: the file must start with a line '---'", line=1)
    end = _closing_fence(rest)
    if end < 0:
        raise Rejected("front matter opened on line 1 is never closed by a line '---'")
    after = rest.find("\n", end)
    body = "" if after < 0 else rest[after + 1 :]
    return Parts(front_matter=rest[:end], body=body.strip("\n"))


def _closing_fence(text: str) -> int:
    """Offset of the first line that is ``---`` or ``...``, or -1 if none."""
    match = _FENCE_LINE.search(text)
    return match.start() if match else -1
