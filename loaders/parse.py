"""One file's bytes -> one article document, or :class:`Rejected`.

A pure function of its inputs, so it can run in worker processes.
"""

from __future__ import annotations

from typing import Any

from core.document import ARTICLE, article_id, search_words
from loaders.errors import Rejected
from loaders.frontmatter import decode, split
from loaders.normalize import Normalizer
from loaders.yamlsafe import parse_yaml


def parse_article(data: bytes, *, path: str, content_hash: str) -> dict[str, Any]:
    """The document for one file, with its derived fields (``_id``, ``_words``,
    ``_titleWords``, ``_source``) but for ``_source.loadedAt``, set when written."""
    parts = split(decode(data))
    raw = parse_yaml(parts.front_matter, first_line=parts.first_line)
    if raw is None:
        raise Rejected("front matter is empty: an article needs at least title and webUrl")
    if isinstance(raw, dict) and "body" in raw and parts.body:
        raise Rejected(
            "front matter has a 'body' field and the file has a body after it; keep one",
            line=parts.first_line,
        )
    if parts.body:
        raw = {**raw, "body": parts.body} if isinstance(raw, dict) else raw
    normalizer = Normalizer()
    try:
        doc = normalizer.object(raw, ARTICLE, path="")
    except Rejected as exc:
        if exc.line is None and exc.field:
            exc.line = _line_of(parts.front_matter, exc.field, parts.first_line)
        raise
    title = doc["title"]
    excerpt = doc.get("excerpt", "")
    title_words = search_words(title)
    doc["_id"] = article_id(doc["webUrl"])
    doc["_titleWords"] = title_words
    doc["_words"] = list(dict.fromkeys(title_words + search_words(excerpt)))
    doc["_source"] = {"path": path, "hash": content_hash, "repaired": normalizer.repaired}
    return doc


def _line_of(front_matter: str, field: str, first_line: int) -> int | None:
    """The line of a field path's top-level key (``related`` for
    ``related[0].title``), when the key is written plainly at the start of one."""
    # A key holds no '.' (normalize rejects it); '[' starts a list index.
    key = field.split(".", 1)[0].split("[", 1)[0]
    for number, line in enumerate(front_matter.split("\n")):
        if line.startswith(f"{key}:"):
            return number + first_line
    return None
