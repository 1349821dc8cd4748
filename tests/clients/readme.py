"""The README's client snippets: each fenced block right after a
``<!-- snippet: NAME -->`` comment, by NAME, with its language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

README = Path(__file__).resolve().parents[2] / "README.md"
#: The address the snippets are written for; the tests put a live server's there.
PLACEHOLDER = "http://127.0.0.1:8000/graphql"

_MARKED = re.compile(r"<!-- snippet: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.S)


class Snippet(NamedTuple):
    language: str
    code: str


def snippets(text: str | None = None) -> dict[str, Snippet]:
    text = README.read_text() if text is None else text
    found: dict[str, Snippet] = {}
    for name, language, code in _MARKED.findall(text):
        assert name not in found, f"two README snippets are named {name}"
        found[name] = Snippet(language, code)
    return found


def section(title: str, text: str | None = None) -> str:
    """The README's ``## title`` section, up to the next ``## ``."""
    text = README.read_text() if text is None else text
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def pointed_at(code: str, url: str) -> str:
    """``code`` with the placeholder address replaced by ``url``; a snippet
    that names another address would reach past the test's server."""
    assert PLACEHOLDER in code, f"a client snippet must use {PLACEHOLDER}"
    assert "localhost" not in code and ":8000" not in code.replace(PLACEHOLDER, ""), code
    return code.replace(PLACEHOLDER, url)
