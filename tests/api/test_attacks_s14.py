"""Session 14's probes: each test is a way one hostile client got more than
it paid for, or held the server, reproduced; it fails while the gap is open."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from graphql import parse
from starlette.testclient import TestClient

from api.operation.cost import count_objects, query_cost
from api.operation.schema import build_schema
from core.store import Store
from tests.api.test_defer import parts
from tests.api.test_related import with_related

GRAPHQL_SCHEMA = build_schema()._schema

# -- 1. A deferred fragment under an object also sent undeferred ------------


def made(answer: list[dict[str, Any]]) -> int:
    """The objects an answer in parts made, counted as the price counts them
    (api.operation.pipeline._part_objects): the first part's data and
    ``pending`` entries; each later part's ``pending``, ``completed``, each
    ``incremental`` entry, its ``data`` object and the objects in it."""
    first, *later = answer
    found = count_objects(first["data"]) + len(first.get("pending", ()))
    for part in later:
        found += len(part.get("pending", ())) + len(part.get("completed", ()))
        for entry in part.get("incremental", ()):
            found += 2 + count_objects(entry["data"]) if "data" in entry else 0
    return found


#: RelatedStory leaves, one a fragment.
RELATED_LEAVES = ["excerpt", "webUrl", "ampWebUrl", "cdnAmpWebUrl", "type", "quality"]


@pytest.mark.parametrize(
    "query",
    [
        # Each fragment's field lands on each related story already sent: one
        # incremental entry (and its data object) per story, not one per article.
        "query($id: ID!) { article(id: $id) { id related(first: 2) { title } "
        + " ".join(f"... @defer {{ related(first: 2) {{ {f} }} }}" for f in RELATED_LEAVES)
        + " } }",
        # A field of its own and one under the provider already sent: two entries.
        "query($id: ID!) { article(id: $id) { id provider { name } "
        + " ".join(f"... @defer {{ {f} provider {{ domain }} }}" for f in RELATED_LEAVES[:4])
        + " } }",
    ],
    ids=["related-items", "provider"],
)
def test_deferred_fields_under_objects_already_sent_are_priced_as_made(
    client: TestClient, loaded: Store, query: str
) -> None:
    # graphql-core delivers a deferred fragment's fields under a field also
    # selected outside the defer as an entry of their own on each object of
    # that field (`subPath`), while cost.py priced PART_OBJECTS a fragment on
    # each parent: 6 such fragments on an article's 2 related stories were
    # priced 27 objects and made 39 (now priced 51); on 100 articles and
    # their 100 related stories each, priced 12,501 (admitted), made about
    # 131,000 (now priced 132,501: refused). The settle step pays no more
    # than the price, so what the price missed was made for free.
    variables = {"id": with_related(loaded)["_id"]}
    price = query_cost(GRAPHQL_SCHEMA, parse(query), variables).objects
    response = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"accept": "multipart/mixed"},
    )
    answer = parts(response)
    assert "errors" not in str(answer)
    assert made(answer) <= price, f"made {made(answer)} objects, priced {price}"


# -- 2. Another process holding the embedded file's write lock --------------

#: Holds a write transaction on the file named by argv[1] until killed.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("locked", flush=True)
time.sleep(60)
"""


def test_registering_a_persisted_query_under_another_writer_fails_fast_and_holds_no_slot(
    client: TestClient, loaded: Store, engine: str, tmp_path: Path
) -> None:
    # Readers never wait in WAL mode (queries, @defer, subscriptions all
    # answered in 0.02-0.04 s while another process held the write lock),
    # but registering a persisted query writes its registration: it waited
    # the request's whole 5 s, answered TIMEOUT ("ask for less"), and its
    # worker thread stayed in SQLite's busy wait for up to 60 s, holding one
    # of the 16 store slots (readyz: store_calls_in_flight 1, then 2). Now
    # a request's write waits for the lock as long as a call waits for a
    # slot (1 s, never past the deadline): STORE_UNAVAILABLE in 1.0 s, 0 in flight.
    if engine != "embedded":
        pytest.skip("the wire server's writes are bounded by its socket timeout")
    path = Path(loaded.db.path)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        query = "{ articles(first: 2) { totalCount } }"
        digest = hashlib.sha256(query.encode()).hexdigest()
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        started = time.monotonic()
        answer = client.post("/graphql", json={"query": query, "extensions": extensions})
        elapsed = time.monotonic() - started
        in_flight = client.get("/readyz").json()["store_calls_in_flight"]
        assert elapsed < 2.0 and in_flight == 0, (elapsed, in_flight, answer.text[:200])
        assert [e["extensions"]["code"] for e in answer.json()["errors"]] == ["STORE_UNAVAILABLE"]
    finally:
        locker.kill()
        locker.wait()
