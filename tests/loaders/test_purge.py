"""The purge hook (``loaders.purge``): a loader write names the cache keys of
the answers it changes, and the hook never holds up or fails a load.

The keys are checked against the API's own answers: each query is asked
before and after one edit, and every answer that changed must carry a key the
write purged, while answers that hold nothing the edit touched carry none.
Runs on both engines.
"""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.cachekeys import ALL, ARTICLE, PROVIDER, TOPIC, object_key
from core.config import ConfigError, Settings
from core.document import article_id
from core.store import Store
from loaders.pipeline import Loader
from loaders.purge import MAX_KEYS, PURGED_KEYS, PURGES, Purger, serve_metrics
from testing.ports import free_port
from tests.articles import EXAMPLES

#: The article most edits below change, and its webUrl.
EDITED = "002_dockside_chargers.md"
EDITED_URL = "https://www.coastline-energy.example/news/dockside-chargers-grid"
DRAFT = "005_orbital_debris_draft.md"
NEW_URL = "https://www.coastline-energy.example/news/tidal-turbines"


class Recorder:
    """A purger's hook that keeps what it is sent."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, keys: list[str]) -> None:
        self.calls.append(keys)

    @property
    def keys(self) -> set[str]:
        return {k for call in self.calls for k in call}


def load(store: Store, settings: Settings, folder: Path, prune: bool = False) -> set[str]:
    """Load ``folder``; the keys the load purged."""
    sent = Recorder()
    with Loader(store, settings, purger=Purger(sent, 5.0)) as loader:
        report = loader.load([folder], prune=prune)
    assert report.ok, report.failures
    return sent.keys


def replace(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def append(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(path.read_text() + text)


def add_article(folder: Path) -> None:
    text = (folder / EDITED).read_text()
    text = text.replace(EDITED_URL, NEW_URL).replace("Dockside chargers", "Tidal turbines")
    (folder / "013_tidal_turbines.md").write_text(text)


#: name -> (the edit, whether the load prunes, the ids of the articles it changes).
EDITS: dict[str, tuple[Callable[[Path], None], bool, list[str]]] = {
    "body": (lambda f: append(f, EDITED, "\nA paragraph added later.\n"), False, [EDITED_URL]),
    "title": (
        lambda f: replace(f, EDITED, "Dockside chargers put", "Dockside chargers now put"),
        False,
        [EDITED_URL],
    ),
    "heat": (lambda f: replace(f, EDITED, "heat: 40", "heat: 95"), False, [EDITED_URL]),
    "unpublish": (
        lambda f: replace(f, EDITED, "published: true", "published: false"),
        False,
        [EDITED_URL],
    ),
    "publish": (lambda f: replace(f, DRAFT, "published: false", "published: true"), False, []),
    "topics": (
        lambda f: replace(f, EDITED, "  - Energy\n", "  - Energy\n  - Harbor Life\n"),
        False,
        [EDITED_URL],
    ),
    "provider": (
        lambda f: replace(f, EDITED, "domain: coastline-energy.example", "domain: newgrid.example"),
        False,
        [EDITED_URL],
    ),
    "new": (add_article, False, [NEW_URL]),
    "delete": (lambda f: (f / EDITED).unlink(), True, [EDITED_URL]),
}


def queries(store: Store) -> list[str]:
    """Queries whose answers an edit may or may not change."""
    ids = sorted(d["_id"] for d in store.articles.find({}, {"_id": 1}))
    providers = sorted(r["_id"] for r in store.db["providers"].find())
    topics = sorted(r["_id"] for r in store.db["topics"].find())
    found = [
        "{ articles(first: 3) { nodes { id title } } }",
        "{ articles(first: 50) { totalCount nodes { id } } }",
        "{ articles(first: 3, orderBy: HEAT_DESC) { nodes { id heat } } }",
        '{ articles(filter: {topic: "Energy"}) { totalCount nodes { id } } }',
        '{ articles(filter: {search: "chargers"}) { nodes { id } } }',
        "{ providers(first: 20) { nodes { domain name articleCount } } }",
        "{ topics(first: 30) { totalCount nodes { name articleCount } } }",
        '{ provider(domain: "newgrid.example") { name articleCount } }',
        '{ topic(name: "Harbor Life") { name } }',
        f'{{ article(webUrl: "{NEW_URL}") {{ title }} }}',
    ]
    for i in [*ids, article_id(NEW_URL)]:
        found.append(f'{{ article(id: "{i}") {{ title }} }}')
        found.append(
            f'{{ article(id: "{i}") {{ title heat published body '
            "provider { domain name articleCount } topics { name articleCount } "
            "related { article { id title } } } }"
        )
    for d in providers:
        found.append(f'{{ provider(domain: "{d}") {{ name articleCount }} }}')
        found.append(f'{{ provider(domain: "{d}") {{ articles(first: 5) {{ nodes {{ id }} }} }} }}')
    found += [f'{{ topic(name: "{t}") {{ articleCount }} }}' for t in topics]
    return found


def answers(client: TestClient, asked: list[str]) -> dict[str, tuple[Any, set[str]]]:
    """Each query's answer (its data: ``extensions`` carry the client's budget,
    which moves with every request) and the keys it carries."""
    found = {}
    for query in asked:
        response = client.get("/graphql", params={"query": query})
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, query
        found[query] = (body["data"], set(response.headers["surrogate-key"].split(" ")))
    return found


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "articles"
    shutil.copytree(EXAMPLES, copy)
    return copy


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_write_purges_the_answers_it_changes_and_no_others(store, settings, folder, edit):
    change, prune, changed_urls = EDITS[edit]
    load(store, settings, folder)
    with TestClient(create_app(settings, store)) as client:
        asked = queries(store)
        before = answers(client, asked)
        change(folder)
        purged = load(store, settings, folder, prune=prune)
        after = answers(client, asked)

    assert purged and ALL not in purged
    for query in asked:
        (old, keys), (new, _) = before[query], after[query]
        if old != new:  # every answer that changed carries a key the write purged
            assert keys & purged, (edit, query, sorted(keys), sorted(purged))
    # Answers that hold nothing the edit touched are left alone: another
    # article's own fields, alone.
    touched = {object_key(ARTICLE, article_id(url)) for url in changed_urls}
    if edit == "publish":
        touched = {k for k in purged if k.startswith(f"{ARTICLE}:")} - {f"{ARTICLE}:*"}
    for query in asked:
        keys = before[query][1]
        if query.endswith("{ title } }") and "article(id:" in query and not keys & touched:
            assert not keys & purged, (edit, query)
    if edit in ("body", "title", "heat"):  # no count or name moved
        assert not {k for k in purged if k.startswith((PROVIDER, TOPIC))}
    if edit == "body":  # nor any list: exactly the answers holding the article
        assert purged == {object_key(ARTICLE, article_id(EDITED_URL)), f"{ARTICLE}:*"}
        for query in asked:
            holds = object_key(ARTICLE, article_id(EDITED_URL)) in before[query][1]
            assert bool(before[query][1] & purged) == holds, query


def test_an_unchanged_reload_purges_nothing(store, settings, folder):
    load(store, settings, folder)
    assert load(store, settings, folder) == set()


def test_an_unpublished_article_no_one_sees_purges_nothing(store, settings, folder):
    load(store, settings, folder)
    append(folder, DRAFT, "\nA paragraph added later.\n")
    assert load(store, settings, folder) == set()


# -- the purger: in the background, bounded, never failing a load -------------------


def counted(outcome: str) -> float:
    return PURGES.labels(outcome)._value.get()


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Hook(http.server.BaseHTTPRequestHandler):
    """A purge endpoint on loopback: records bodies, answers ``status``."""

    bodies: list[Any]
    status = 200
    delay_s = 0.0

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        payload = json.loads(self.rfile.read(length))
        assert self.headers["Content-Type"] == "application/json"
        time.sleep(self.delay_s)
        type(self).bodies.append(payload)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("H", (Hook,), {"bodies": [], "status": 200, "delay_s": 0.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/purge", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("engine", ["embedded"], indirect=True)  # the hook, not the store
def test_the_url_hook_gets_the_keys_as_json(store, settings, folder, hook):
    url, handler = hook
    settings = Settings(**{**settings.__dict__, "purge_url": url})
    with Loader(store, settings) as loader:
        assert loader.load([folder]).ok
    keys = {k for body in handler.bodies for k in body["keys"]}
    assert object_key(ARTICLE, article_id(EDITED_URL)) in keys
    assert {ARTICLE, PROVIDER, TOPIC} <= keys
    assert all(len(body["keys"]) <= 100 for body in handler.bodies)


@pytest.mark.parametrize("engine", ["embedded"], indirect=True)
def test_a_failing_hook_is_logged_and_counted_and_the_load_goes_on(
    store, settings, folder, hook, caplog
):
    url, handler = hook
    handler.status = 500
    failed = counted("failed")
    settings = Settings(**{**settings.__dict__, "purge_url": url})
    with caplog.at_level(logging.WARNING, "newsgraph.loaders"), Loader(store, settings) as loader:
        report = loader.load([folder])
    assert report.ok and report.inserted == 12
    assert counted("failed") > failed
    assert any(
        "cache purge of" in r.getMessage() and "500" in r.getMessage() for r in caplog.records
    )


def test_a_slow_hook_never_holds_up_the_loader():
    """Queued at once; calls bounded by the timeout; what is still queued at
    exit after twice the timeout is dropped, and said so."""
    started = threading.Event()
    release = threading.Event()

    def slow(keys: list[str]) -> None:
        started.set()
        release.wait(5)
        raise TimeoutError("too slow")

    purger = Purger(slow, timeout_s=0.2)
    begun = time.monotonic()
    purger.purge(["Article:a"])
    started.wait(5)
    purger.purge(["Article:b"])  # queued behind the slow call
    assert time.monotonic() - begun < 1
    dropped = counted("dropped")
    begun = time.monotonic()
    purger.close()
    assert time.monotonic() - begun < 1.5
    assert counted("dropped") == dropped + 1
    release.set()


def test_the_command_hook_reads_the_keys_on_stdin(tmp_path):
    out = tmp_path / "keys.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_bytes(sys.stdin.buffer.read())"
    settings = Settings(purge_command=f"{sys.executable} -c {json.dumps(script)}")
    purger = Purger.for_settings(settings)
    assert purger is not None
    purger.purge(["Article:a", "Topic:Public%20Health"])
    purger.close()
    assert json.loads(out.read_text()) == {"keys": ["Article:a", "Topic:Public%20Health"]}
    failing = Purger.for_settings(Settings(purge_command=f"{sys.executable} -c 'exit(3)'"))
    assert failing is not None
    failed = counted("failed")
    failing.purge(["Article:a"])
    failing.close()
    assert counted("failed") == failed + 1


def test_too_many_keys_at_once_purge_everything():
    sent = Recorder()
    purger = Purger(sent, 5.0)
    purger.purge(object_key(ARTICLE, f"{i:024x}") for i in range(MAX_KEYS + 1))
    purger.close()
    assert sent.calls == [[ALL]]
    keys = PURGED_KEYS._value.get()
    purger = Purger(sent, 5.0)
    purger.purge(object_key(ARTICLE, f"{i:024x}") for i in range(250))
    purger.close()
    assert [len(c) for c in sent.calls[1:]] == [100, 100, 50]
    assert PURGED_KEYS._value.get() == keys + 250


def test_hook_settings_are_checked():
    assert Purger.for_settings(Settings()) is None
    for wrong in (
        {"NEWSGRAPH_PURGE_URL": "ftp://cdn.example/"},
        {"NEWSGRAPH_PURGE_URL": "http://a.example/", "NEWSGRAPH_PURGE_COMMAND": "true"},
        {"NEWSGRAPH_PURGE_COMMAND": "   "},
        {"NEWSGRAPH_PURGE_COMMAND": "purge 'unclosed"},
        {"NEWSGRAPH_LOADER_METRICS": "no-port"},
        {"NEWSGRAPH_LOADER_METRICS": "127.0.0.1:99999"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(wrong)
        with pytest.raises(ConfigError):  # however the settings were made
            Purger.for_settings(Settings(**_fields(wrong)))


def _fields(env: dict[str, str]) -> dict[str, Any]:
    from core.config import ENV_NAMES

    by_env = {v: k for k, v in ENV_NAMES.items()}
    return {by_env[k]: v for k, v in env.items()}


def test_the_loaders_metrics_are_served_where_the_setting_says():
    port = free_port()
    stop = serve_metrics(f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        stop()
    assert "newsgraph_cache_purges_total" in text
    assert "newsgraph_cache_purge_keys_total" in text
    taken = serve_metrics(f"127.0.0.1:{port}")
    try:  # a port already taken: logged, and the loader goes on without
        assert serve_metrics(f"127.0.0.1:{port}")() is None
    finally:
        taken()
