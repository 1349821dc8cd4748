"""How a file's path is written wherever it leaves the file system.

Linux file names are bytes: they need not be valid UTF-8 and may hold any
control character but ``/`` and NUL. Python hands an undecodable byte over as
a lone surrogate (``os.fsdecode``'s surrogateescape), which SQLite, MongoDB,
JSON and the terminal all refuse; a newline in a name could start a forged
line in a report. So a path is written as its *text*: the same characters,
but for these, escaped with a backslash:

- an undecodable byte ``0x80``-``0xff``: ``\\xff``
- an ASCII control character: ``\\n``, ``\\r``, ``\\t``, else ``\\x1b``
- a C1 control, line or paragraph separator, bidirectional override, or any
  other surrogate: ``\\u0085``, ``\\u2028``, ``\\u202e``
- the backslash itself: ``\\\\``, so the text is unambiguous and
  :func:`path_of` turns it back into the exact path (the raw bytes).

Every other path is its own text, so what is stored for ordinary files does
not change. The text is what reports print, what ``_source.path`` holds, and
what the loader's snapshot keys on; :func:`path_of` gives the path to open,
stat or delete. The escaped set is fixed (not "whatever is unprintable in this
Python's Unicode tables"), so a stored text never changes meaning.
"""

from __future__ import annotations

import os
import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: What an undecodable byte becomes in a ``str`` path (surrogateescape).
_BYTES = range(0xDC80, 0xDD00)
_UNSAFE = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),  # C1 controls: U+0085 is a line break to some readers
    0x2028,
    0x2029,  # line and paragraph separators
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),  # bidirectional marks and overrides reorder what is shown
    *range(0xD800, 0xE000),  # surrogates
]


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x80:
        return f"\\x{code:02x}"
    if code in _BYTES:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


#: For text that is only shown (a reason): unsafe characters escaped.
_SHOWN = {code: _escape(code) for code in _UNSAFE}
#: For a path's text: the backslash too, so that it can be read back.
_TEXT = {**_SHOWN, ord("\\"): "\\\\"}
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([\\nrt]))")


def path_text(path: str | os.PathLike[str]) -> str:
    """The path as valid, printable, one-line text that :func:`path_of` reverses."""
    return os.fspath(path).translate(_TEXT)


def path_of(text: str) -> str:
    """The file system path that :func:`path_text` wrote as ``text``.

    A backslash that starts no escape is kept as it is, so text stored before
    paths were escaped still names its file unless it happens to hold one.
    """
    return _ESCAPE.sub(_unescape, text)


def printable(text: str) -> str:
    """``text`` with the characters that could break or disguise a line
    escaped; backslashes are left alone (the result is for reading only)."""
    return text.translate(_SHOWN)


def _unescape(match: re.Match[str]) -> str:
    byte, code, named = match.groups()
    if byte is not None:
        value = int(byte, 16)
        return chr(value if value < 0x80 else 0xDC00 + value)
    if code is not None:
        return chr(int(code, 16))
    return {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[named]
