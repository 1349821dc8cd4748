"""Article files for tests, written from parts so each test can break one.

``article_text(title='"x"', heat=None)`` is a valid article with ``title``
replaced by the raw YAML ``"x"`` and ``heat`` removed.
"""

from __future__ import annotations

from pathlib import Path

#: The project's own sample articles.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "articles"

_BASE: dict[str, str] = {
    "category": "news",
    "title": '"Tram Line Extension Opens Early"',
    "excerpt": '"The new stops serve the hospital and the university campus."',
    "publishedDateTime": "2025-06-01T08:00:00Z",
    "webUrl": '"https://www.tramtimes.example/news/line-extension"',
    "ampWebUrl": '"https://www.tramtimes.example/news/line-extension?amp"',
    "type": "article",
    "quality": "61",
    "heat": "45",
    "published": "true",
    "provider": "\n  name: Tram Times\n  domain: tramtimes.example",
    "topics": "\n  - Urban Transit\n  - Health",
    "images": (
        '\n  - url: "https://img.tramtimes.example/stop.jpg"\n    width: 800\n'
        "    height: 450\n    isCached: true"
    ),
    "related": (
        '\n  - title: "Hospital Welcomes Tram Stop"\n'
        "    publishedDateTime: 2025-06-02T10:00:00Z\n"
        '    webUrl: "https://www.healthdesk.example/tram-stop"\n'
        "    type: article\n    provider:\n      name: Health Desk\n"
        "      domain: healthdesk.example\n    quality: 50\n    images: []"
    ),
    "secured": '"c2VjcmV0LXRva2Vu;AAAA=="',
}


def article_text(body: str = "", **fields: str | None) -> str:
    parts = {**_BASE, **fields}
    lines = ["---"]
    for key, value in parts.items():
        if value is not None:
            lines.append(f"{key}: {value}" if not value.startswith("\n") else f"{key}:{value}")
    lines.append("---")
    text = "\n".join(lines) + "\n"
    return text + ("\n" + body + "\n" if body else "")


def write_article(directory: Path, name: str, body: str = "", **fields: str | None) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(article_text(body, **fields), encoding="utf-8")
    return path


def web_url(slug: str) -> str:
    """Raw YAML for a distinct webUrl."""
    return f'"https://www.tramtimes.example/news/{slug}"'


def write_linked_corpus(directory: Path, n: int = 60, links: int = 12, body: str = "") -> Path:
    """``n`` articles whose related stories are each other (every article cites
    the next ``links``): chains of ``related { article { related … } } }`` fan
    out at every level, as a hostile client would want. Each has ``body``."""

    def url(i: int) -> str:
        return f'"https://www.linkedwire.example/story/{i % n}"'

    for i in range(n):
        related = "".join(
            f'\n  - title: "Story {(i + k) % n}"\n    webUrl: {url(i + k)}\n'
            f"    provider:\n      name: Linked Wire\n      domain: linkedwire.example"
            for k in range(1, links + 1)
        )
        write_article(
            directory,
            f"story{i:03}.md",
            body,
            title=f'"Story {i}"',
            webUrl=url(i),
            topics=f"\n  - Topic {i % 5}\n  - Topic {(i + 1) % 5}",
            related=related,
            publishedDateTime=f"2025-06-{1 + i % 28:02}T08:00:00Z",
        )
    return directory
