"""The subscription attack (bench/hostile.py, ``hostile --publish-into``), short,
on both engines: a live ``newsgraph serve --load DIR --watch``, one client's
heavy subscriptions (priced under the budget, so they run), stories published
through the watched folder and answered to every subscriber, while normal
clients keep getting answers with no errors."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.hostile import SubscriptionAttack, run_subscription_hostile
from testing.live import running_server
from tests.articles import write_linked_corpus

#: Each phase: long enough for a poll after the stories are written (2.5 s in).
SECONDS = max(float(os.environ.get("NEWSGRAPH_LOAD_SECONDS", "5")), 8.0)


@pytest.fixture
def watched(engine, settings, tmp_path):
    """A live server over articles that cite each other, watching their folder."""
    corpus = write_linked_corpus(tmp_path / "linked")
    (corpus / "published").mkdir()
    env = {
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_SUBSCRIPTION_POLL_MS": "200",
        # The normal clients name addresses of their own (bench.load): their
        # budgets are not the attacker's.
        "NEWSGRAPH_TRUSTED_PROXIES": "127.0.0.1",
    }
    with running_server(env, "--load", str(corpus), "--watch") as (url, pid):
        yield url, pid, corpus / "published"


def test_identical_heavy_subscriptions_are_answered_beside_normal_clients(watched):
    url, pid, folder = watched
    attack = SubscriptionAttack(folder, sockets=2, subscriptions=10, stories=2)
    result = asyncio.run(run_subscription_hostile(url, 2, SECONDS, attack, pid))
    summary = result.summary()
    print("hostile subscriptions:", summary)
    assert result.quiet.errors == [] and result.attacked.errors == [], result.attacked.errors[:3]
    assert result.attacks["subscriptions: connection_ack"] == 2
    # Every subscriber is sent each story (none refused: each is priced under the budget).
    assert result.attacks["subscriptions: next"] == 20, result.attacks
    assert set(result.attacks) == {"subscriptions: connection_ack", "subscriptions: next"}
    assert summary["server_cpu_s"]["attacked"] is not None
    assert summary["attacked"]["rss_mb_max"] <= summary["quiet"]["rss_mb_max"] + 150, summary
