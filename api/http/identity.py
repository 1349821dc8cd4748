"""Who is asking: an address, an API key, or the admin.

Every request and WebSocket connection gets an
:class:`~api.schema.context.Identity` before anything runs, whose budget the
pipeline draws from (``api.operation.throttle``):

- ``Authorization: Bearer <token>`` (or, over WebSocket, ``connection_init``'s
  ``authorization``) with an API key (``core.keys``: ``ng_…``) is that key,
  tier ``key``; a key that is unknown or revoked is refused (401), and the
  address's budget pays for the look-up, so guessing costs what asking does:
  once the address's budget is spent, a key this worker has not seen in the
  last :data:`KEY_CACHE_S` seconds is not looked up (429 until it refills);
- the admin token (``NEWSGRAPH_ADMIN_TOKEN``) is ``admin``;
- anyone else is their address, tier ``anonymous``. The address is the
  connection's own, unless that is one of ``NEWSGRAPH_TRUSTED_PROXIES``: then
  ``X-Forwarded-For`` is read from the right, past every trusted proxy, and
  the first address that is not one is the client (the left of it was
  written by whoever sent the request, and is never believed). An IPv6
  client is its /64 network: anyone given one address by their provider has
  all of it.

An address's client has a network too (:func:`network_key`): its IPv6 /48
(what a provider gives a site, 65,536 /64s) or its IPv4 /24. A worker's
bounds per client (subscriptions, WebSocket connections) are a few dozen
clients' shares of the worker's; its network may hold a quarter of the
worker, so that one holder of many /64s, a /48 among them, cannot take it
all. Any other identity (an API key, the admin) is its own network.

A key's look-up is kept :data:`KEY_CACHE_S` seconds (found or not), so a
client's requests cost no store call each, and a revoked key stops working
on every worker within that time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from cachetools import TTLCache

from api.bounded import BoundedLRU
from api.data.gateway import Gateway
from api.errors import ClientError
from api.operation.throttle import OPERATION_POINTS, STORE_CALL_POINTS, Limits
from api.schema.context import Identity, is_admin
from core import keys
from core.config import ConfigError, Settings

log = logging.getLogger("newsgraph.api")

#: How long a key's look-up is believed (seconds): revoking takes this long to
#: reach every worker.
KEY_CACHE_S = 10
#: Most look-ups kept (least recently used go first).
KEY_CACHE_ENTRIES = 10_000
#: What a look-up costs the address that asks, in points (as a store call).
LOOKUP_POINTS = OPERATION_POINTS + STORE_CALL_POINTS
UNKNOWN_KEY = "unknown or revoked API key"
#: Connection addresses whose reading is kept, and the bytes each entry is
#: taken to hold (the address twice, as text and in its key, and the
#: cache's node) besides twice its key's length. A longer "address" (not an
#: IP connection's) is read each time.
PEERS_KEPT = 10_000
PEER_BYTES = 300
PEER_TEXT_MAX = 64
#: The network an address's client belongs to, by its prefix length.
NETWORK_PREFIX = {4: 24, 6: 48}

Network = Any  # IPv4Network | IPv6Network


def trusted_networks(setting: str) -> list[Network]:
    """``NEWSGRAPH_TRUSTED_PROXIES`` as networks (an address is a network of one)."""
    networks = []
    for entry in (e.strip() for e in setting.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"NEWSGRAPH_TRUSTED_PROXIES: {entry!r} is not an address or network "
                "(e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)"
            ) from None
    return networks


def _address(text: str) -> IPv4Address | IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(peer: str | None, forwarded: Sequence[str], proxies: Sequence[Network]) -> str:
    """The budget key of the client behind a connection from ``peer`` that
    carried these ``X-Forwarded-For`` headers."""
    address = _address(peer or "")
    if address is None:  # not an IP connection (a test client, a Unix socket)
        return f"addr:{peer or 'unknown'}"

    def trusted(a: IPv4Address | IPv6Address) -> bool:
        return any(a in network for network in proxies)

    if forwarded and trusted(address):
        hops = [hop for header in forwarded for hop in header.split(",")]
        for hop in reversed(hops):
            found = _address(hop)
            if found is None:  # garbled: the last proxy that passed it is who we know
                break
            address = found
            if not trusted(found):
                break
    return _address_key(address)


def _peer(peer: str | None, proxies: Sequence[Network]) -> tuple[str, bool]:
    """What a connection's address says on its own: the key of a client
    connecting from there, and whether it is a trusted proxy's (whose
    ``X-Forwarded-For`` is read), as :func:`client_key` finds them."""
    address = _address(peer or "")
    if address is None:
        return f"addr:{peer or 'unknown'}", False
    return _address_key(address), any(address in network for network in proxies)


def _address_key(address: IPv4Address | IPv6Address) -> str:
    if isinstance(address, IPv6Address):
        return f"addr:{IPv6Network((address, 64), strict=False)}"
    return f"addr:{address}"


def network_key(client: str) -> str:
    """The key of the network whose clients share a bound with ``client``
    (a key of :func:`client_key`'s, ``addr:…``): ``net:`` and its IPv6 /48 or
    IPv4 /24. Any other key (an API key, the admin, an address that is not
    an IP) is its own network."""
    if not client.startswith("addr:"):
        return client
    try:
        address = ip_network(client[len("addr:") :], strict=False)
        network = address.supernet(new_prefix=NETWORK_PREFIX[address.version])
    except ValueError:  # not an IP, or wider than a network already
        return client
    return f"net:{network}"


class Identify:
    """Finds each request's identity (one per app: it keeps the key look-ups)."""

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proxies = trusted_networks(settings.trusted_proxies)
        self.admin_token = settings.admin_token
        self.gateway = gateway
        self.limits = limits
        self._keys: TTLCache[str, keys.Key | None] = TTLCache(
            KEY_CACHE_ENTRIES, KEY_CACHE_S, timer=clock
        )
        #: What each connection address says on its own (:func:`_peer`):
        #: its text parsed once, not on every request.
        self._peers: BoundedLRU[str | None, tuple[str, bool]] = BoundedLRU(
            PEERS_KEPT, PEERS_KEPT * PEER_BYTES, lambda found: PEER_BYTES + 2 * len(found[0])
        )

    async def __call__(
        self, peer: str | None, forwarded: Sequence[str], authorization: str | None
    ) -> Identity:
        known = self._peers.get(peer)
        if known is None:
            known = _peer(peer, self.proxies)
            if peer is None or len(peer) <= PEER_TEXT_MAX:
                self._peers[peer] = known
        own, proxy = known
        # Behind a trusted proxy: the client it forwarded, read afresh each time.
        key = client_key(peer, forwarded, self.proxies) if forwarded and proxy else own
        anonymous = Identity(key)
        if not authorization:  # most requests: no other coroutine to start
            return anonymous
        return await self.credentials(authorization, anonymous)

    async def credentials(self, authorization: str | None, anonymous: Identity) -> Identity:
        """Who ``authorization`` says the client is (``anonymous``, the
        address's identity, when it says nothing)."""
        if not authorization:
            return anonymous
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and keys.looks_like_key(token):
            return await self._key(token, anonymous)
        if is_admin(authorization, self.admin_token):
            return Identity("admin", "admin")
        return anonymous  # as before keys: a wrong token asks as anyone does

    async def _key(self, token: str, anonymous: Identity) -> Identity:
        digest = keys.digest(token)
        if digest in self._keys:
            key = self._keys[digest]
        else:
            if self.limits.available(anonymous) < LOOKUP_POINTS:
                # Out of budget: the store is not asked (Admit refuses it, 429).
                return Identity(anonymous.key, refused=UNKNOWN_KEY)
            try:
                key = await self.gateway.run(keys.find, self.gateway.store.keys, token)
            except ClientError as exc:  # the store is out: ask as anyone, this once
                log.warning("could not check an API key: %s", exc)
                return anonymous
            self._keys[digest] = key
        if key is None:
            return Identity(anonymous.key, refused=UNKNOWN_KEY)
        return Identity(f"key:{key.id}", "key")
