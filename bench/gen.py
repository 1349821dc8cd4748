"""A deterministic corpus of article files in the seed format.

Same ``n`` and ``seed``, same bytes: benchmarks compare like with like. The shape
follows real feeds: ~500 providers with Zipf-like popularity, ~60 topics (1–4 an
article), 0–6 related stories (a third of them pointing at other articles of the
corpus), 0–3 images, titles and excerpts of realistic length with some non-ASCII
text and some mojibake, 5% unpublished, dates spread over three years.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROVIDERS = 500
TOPICS = 60
FILES_PER_DIR = 1000
START = datetime(2022, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 24 * 3600

_SYLLABLES = [
    "ka", "lo", "mi", "ren", "to", "va", "sel", "dor", "an", "bri", "cor", "el",
    "fin", "gar", "hul", "is", "jun", "ke", "lum", "mor", "nes", "or", "pel", "quin",
]  # fmt: skip
_WORDS = [
    "city", "council", "storm", "port", "rail", "energy", "budget", "school", "river",
    "clinic", "court", "market", "housing", "water", "bridge", "harbor", "transit",
    "wildfire", "drought", "election", "museum", "hospital", "police", "farm", "festival",
    "satellite", "rocket", "battery", "solar", "wind", "ferry", "tram", "airport", "library",
    "union", "factory", "mayor", "senate", "vaccine", "research", "data", "privacy", "robot",
]  # fmt: skip
_ACCENTED = ["café", "Zürich", "São Paulo", "naïve", "Montréal", "Kraków", "résumé", "Málaga"]
_MOJIBAKE = ["â€”", "â€™", "Ã©", "â€œ", "â€\x9d"]


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    if rng.random() < 0.15:
        text += " " + rng.choice(_ACCENTED)
    return text[0].upper() + text[1:]


def _topic_names(rng: random.Random) -> list[str]:
    names: set[str] = set()
    while len(names) < TOPICS:
        names.add(f"{_name(rng, 2)} {rng.choice(_WORDS).capitalize()}")
    return sorted(names)


def _providers(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(PROVIDERS):
        name = f"{_name(rng, 2)} {rng.choice(['Times', 'Herald', 'Post', 'Daily', 'Wire'])}"
        out.append((name, f"{name.split()[0].lower()}{i}.example"))
    return out


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank**s) for rank in range(1, n + 1)]


def _url(domain: str, slug: str) -> str:
    return f"https://www.{domain}/news/{slug}"


def generate(n: int, directory: Path, seed: int = 1) -> list[Path]:
    """Write ``n`` article files under ``directory`` (1,000 a sub-folder)."""
    rng = random.Random(seed)
    topics = _topic_names(rng)
    providers = _providers(rng)
    weights = _zipf_weights(len(providers))
    picks = rng.choices(range(len(providers)), weights=weights, k=n)
    slugs = [f"{i:07d}-{rng.choice(_WORDS)}-{rng.choice(_WORDS)}" for i in range(n)]
    paths = []
    for i in range(n):
        provider = providers[picks[i]]
        when = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
        article = {
            "category": rng.choice(["news", "news", "news", "opinion", "analysis"]),
            "title": _sentence(rng, rng.randint(5, 12)),
            "excerpt": _excerpt(rng),
            "publishedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "webUrl": _url(provider[1], slugs[i]),
            "ampWebUrl": _url(provider[1], slugs[i]) + "?amp",
            "type": "article",
            "quality": rng.randint(20, 95),
            "heat": -1 if rng.random() < 0.1 else rng.randint(0, 100),
            "published": rng.random() >= 0.05,
            "provider": {"name": provider[0], "domain": provider[1]},
            "topics": rng.sample(topics, rng.randint(1, 4)),
            "images": [_image(rng, provider[1]) for _ in range(rng.randint(0, 3))],
            "related": [
                _related(rng, i, n, slugs, providers, picks, when) for _ in range(rng.randint(0, 6))
            ],
            "secured": base64.b64encode(rng.randbytes(96)).decode()
            + ";"
            + base64.b64encode(rng.randbytes(16)).decode(),
        }
        path = directory / f"{i // FILES_PER_DIR:04d}" / f"{i:07d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(article), encoding="utf-8")
        paths.append(path)
    return paths


def _excerpt(rng: random.Random) -> str:
    text = ". ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(1, 3))) + "."
    if rng.random() < 0.03:  # a feed that double-encoded its UTF-8
        words = text.split(" ")
        words.insert(rng.randrange(len(words)), rng.choice(_MOJIBAKE))
        text = " ".join(words)
    return text


def _image(rng: random.Random, domain: str) -> dict:
    image = {
        "url": f"https://media.{domain}/img/{rng.randrange(10**8):08d}.jpg",
        "width": rng.choice([640, 800, 1024, 1200, 1920]),
        "height": rng.choice([360, 450, 576, 675, 1080]),
    }
    if rng.random() < 0.5:
        image["isCached"] = rng.random() < 0.8
    return image


def _related(rng, i, n, slugs, providers, picks, when) -> dict:
    if rng.random() < 1 / 3 and n > 1:  # a story of this corpus
        j = rng.randrange(n - 1)
        j += j >= i
        domain_name, domain = providers[picks[j]]
        url = _url(domain, slugs[j])
    else:
        domain_name, domain = rng.choice(providers)
        url = _url(domain, f"x{rng.randrange(10**9)}-{rng.choice(_WORDS)}")
    return {
        "title": _sentence(rng, rng.randint(5, 12)),
        "excerpt": _sentence(rng, rng.randint(10, 20)) + ".",
        "publishedDateTime": (when + timedelta(hours=rng.randint(-72, 72))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "webUrl": url,
        "type": "article",
        "provider": {"name": domain_name, "domain": domain},
        "quality": rng.randint(20, 95),
        "images": [_image(rng, domain) for _ in range(rng.randint(0, 1))],
    }


def render(article: dict) -> str:
    """YAML front matter in the seeds' layout: strings quoted, blocks indented."""
    lines = ["---"]
    for key, value in article.items():
        lines.extend(_yaml(key, value, 0))
    lines.append("---")
    return "\n".join(lines) + "\n"


def _yaml(key: str, value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        out = [f"{pad}{key}:"]
        for k, v in value.items():
            out.extend(_yaml(k, v, indent + 2))
        return out
    if isinstance(value, list):
        if not value:
            return [f"{pad}{key}: []"]
        out = [f"{pad}{key}:"]
        for item in value:
            if isinstance(item, dict):
                first = True
                for k, v in item.items():
                    sub = _yaml(k, v, indent + 4)
                    if first:
                        sub[0] = f"{pad}  - {sub[0].lstrip()}"
                        first = False
                    out.extend(sub)
            else:
                out.append(f"{pad}  - {_scalar(item)}")
        return out
    return [f"{pad}{key}: {_scalar(value)}"]


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value[:4].isdigit() and "T" in value and value.endswith("Z"):
        return value  # dates unquoted, as in the seeds
    return json.dumps(value, ensure_ascii=False)
