"""Who asks, as ``Identify`` finds it per request (``api.http.identity``): each
connection address is read once and kept (bounded), and the identity it gives
is :func:`client_key`'s, whatever was kept before, the headers or the order."""

from __future__ import annotations

import asyncio
import uuid
from itertools import product

from api.data.gateway import Gateway
from api.http import identity
from api.http.identity import Identify, client_key, trusted_networks
from api.operation.throttle import Limits
from core.config import Settings
from core.store import connect

PROXIES = "10.0.0.0/8, 192.0.2.7"
PEERS = [
    "203.0.113.5",
    "10.1.2.3",
    "192.0.2.7",
    "2001:db8:1:2::5",
    "::ffff:192.0.2.1",
    "testclient",
    None,
    "x" * 200,  # no IP connection's: read each time, never kept
]
FORWARDED = [[], ["198.51.100.1"], ["6.6.6.6, 198.51.100.1, 10.9.9.9"], ["garbage, 10.2.2.2"]]


def _identify() -> Identify:
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}", trusted_proxies=PROXIES)
    gateway = Gateway(connect(settings), 1000)
    return Identify(settings, gateway, Limits.for_settings(settings))


def test_each_request_is_who_client_key_says_kept_or_not() -> None:
    identify, proxies = _identify(), trusted_networks(PROXIES)
    cases = list(product(PEERS, FORWARDED)) * 2  # the second time, from what was kept
    for peer, forwarded in cases:
        found = asyncio.run(identify(peer, forwarded, None))
        assert found.key == client_key(peer, forwarded, proxies), (peer, forwarded)
        assert found.tier == "anonymous" and found.refused is None


def test_addresses_kept_are_bounded() -> None:
    identify = _identify()
    asyncio.run(identify("x" * 200, [], None))
    for n in range(identity.PEERS_KEPT + 10):
        asyncio.run(identify(f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", [], None))
    assert len(identify._peers) <= identity.PEERS_KEPT
    assert "x" * 200 not in identify._peers
