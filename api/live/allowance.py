"""Every bound on what live subscriptions hold, per worker, network and client: how
many run, and the memory they hold.

A subscription is admitted here when it joins the feed (``api.live.feed.Feed.join``,
the one join of every transport's subscriptions, WebSocket and SSE alike), and
given back here however it ends: one step, in one module, for each limit.

The counts (``NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT``, over all of a client's
connections and event streams, and ``NEWSGRAPH_SUBSCRIPTIONS_MAX``) bound how
many subscriptions run, not what they hold: a subscription keeps
its parsed document (and the plan, which reaches it) for as long as it runs,
and a document within the token limit is about 1 MB. 40 subscriptions of one
client, each a 1,400-token document, held 25.8 MB under tracemalloc; 1,000
on a worker would have held 650 MB, past every cache's bound together.

So each subscription is charged, when it joins the feed, what it makes the
worker hold, and given it back when it leaves (however it ends: all ends go
through ``api.live.feed.Feed.leave``, or ``Feed.close``). Identical
subscriptions (one group, ``api.live.feed``) hold one document, one plan and
one key between them: the worker is charged those once per group, and a
client once per group it has a member in (what its subscriptions would still
hold were everyone else's gone); each subscription is charged besides what
it holds of its own (its text, its queue, its operation).

A client's network (``NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK`` and
``NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK_BYTES``) has a share above its
clients' (theirs together, each group once per network), as a client has
above its subscriptions: a client is an address (an IPv6 /64), and the
worker's bounds are only 16 to 25 clients' shares, so the holder of an IPv6
/48 (65,536 /64s) filled the worker from 21 of them, and every other client
was refused. A network (which addresses are one is the transport's to say:
``network``, injected, ``api.http.identity.network_key``) may hold a
quarter of the worker. A client that is its own network (an API key, the
admin) has no second share.

A subscription over its client's share, its network's or the worker's is
refused, as the counts refuse one (``TOO_MANY_SUBSCRIPTIONS``), before it
holds anything. The counts are checked first (the client's, its network's,
then the worker's), so a subscription refused for its count never has its
plan made to be measured; then the bytes (in the same order). A refusal for
the worker's bound says ``worker=True``: the client is not at fault, and may
try again later; one for its network's is its side's (the network's
clients together asked too much).

The bound per WebSocket connection (``NEWSGRAPH_SUBSCRIPTIONS_PER_CONNECTION``)
is not here: it bounds the operations a connection runs, from its
``subscribe`` message on (validation, pricing, its start), which an event
stream (one subscription per answer) has no need of (``api.http.websocket``).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from api.errors import TooManySubscriptionsError

#: Who a share is kept for: an identity's key (``api.schema.context.Identity``).
ClientKey = str


@dataclass
class Share:
    """What one holder's subscriptions hold (a client's, or its network's):
    their count and bytes, and its members per group."""

    subscriptions: int = 0
    bytes: int = 0
    groups: Counter[Hashable] = field(default_factory=Counter)


def own_network(client: ClientKey) -> ClientKey:
    """Every client its own network (no share above a client's)."""
    return client


@dataclass
class Shares:
    """The shares of one kind of holder (clients, or their networks), each
    bounded by ``most`` subscriptions and ``max_bytes``; ``who`` names the
    holder to the client that is refused (``{key}``: its key)."""

    most: int
    max_bytes: int
    who: str
    held: dict[ClientKey, Share] = field(default_factory=dict)

    def share(self, key: ClientKey) -> Share:
        return self.held.get(key) or Share()

    def count(self, key: ClientKey, share: Share) -> None:
        if share.subscriptions >= self.most:
            raise TooManySubscriptionsError(
                f"{self.who.format(key=key)} may hold at most {self.most} subscriptions on a "
                "server, over WebSocket connections and event streams alike; complete one first"
            )

    def cost(self, share: Share, group: Hashable, group_bytes: int, own: int) -> int:
        """What a subscription joining ``group`` adds to ``share``: the group's
        bytes once per holder."""
        return own + (group_bytes if share.groups[group] == 0 else 0)

    def bytes(self, key: ClientKey, share: Share, cost: int) -> None:
        if share.bytes + cost > self.max_bytes:
            raise TooManySubscriptionsError(
                f"the subscriptions of {self.who.format(key=key)} may hold at most "
                f"{self.max_bytes} bytes on a server; this one needs {cost} more, and "
                f"{share.bytes} are held (identical subscriptions hold their document "
                "once): complete one first"
            )

    def charge(self, key: ClientKey, share: Share, group: Hashable, cost: int) -> None:
        share.subscriptions += 1
        share.bytes += cost
        share.groups[group] += 1
        self.held[key] = share

    def release(self, key: ClientKey, group: Hashable, group_bytes: int, own: int) -> None:
        share = self.held.get(key)
        if share is None:
            return
        share.subscriptions -= 1
        share.groups[group] -= 1
        share.bytes -= own
        if share.groups[group] <= 0:
            del share.groups[group]
            share.bytes -= group_bytes
        if not share.groups:
            del self.held[key]


class Allowance:
    """A worker's subscriptions and the bytes they hold, against ``most``
    subscriptions and ``max_bytes`` in all, ``per_client_count`` and
    ``per_client`` bytes for each client, and ``per_network_count`` and
    ``per_network`` bytes for each network of clients (``network``: a
    client's network's key; ``sys.maxsize``: unbounded)."""

    def __init__(
        self,
        max_bytes: int,
        per_client: int,
        most: int = sys.maxsize,
        per_client_count: int = sys.maxsize,
        per_network: int = sys.maxsize,
        per_network_count: int = sys.maxsize,
        network: Callable[[ClientKey], ClientKey] = own_network,
    ) -> None:
        self.max_bytes = max_bytes
        self.most = most
        self.network = network
        self.clients = Shares(per_client_count, per_client, "a client")
        self.networks = Shares(
            per_network_count, per_network, "the clients of your network ({key})"
        )
        #: Subscriptions and bytes held now, over every client.
        self.subscriptions = 0
        self.held = 0

    def held_by(self, client: ClientKey) -> int:
        return self.clients.share(client).bytes

    def held_by_network(self, client: ClientKey) -> int:
        """What the clients of ``client``'s network hold (its own, when it
        is its own network)."""
        network = self.network(client)
        return (self.clients if network == client else self.networks).share(network).bytes

    def _holders(self, client: ClientKey) -> list[tuple[Shares, ClientKey]]:
        """Whose shares a subscription of ``client`` is charged to: its own,
        and its network's when that is not itself."""
        network = self.network(client)
        if network == client:
            return [(self.clients, client)]
        return [(self.clients, client), (self.networks, network)]

    def admit(
        self,
        client: ClientKey,
        group: Hashable,
        group_bytes: int | Callable[[], int],
        new_group: bool,
        own: int,
    ) -> int:
        """Count and charge a subscription of ``client`` joining ``group``
        (new to the worker if ``new_group``), which holds ``group_bytes`` for
        all its members (measured only once the counts let it in) and
        ``own`` for this one; or refuse it, charging nothing. The group's
        bytes, as charged."""
        holders = [(shares, key, shares.share(key)) for shares, key in self._holders(client)]
        for shares, key, share in holders:
            shares.count(key, share)
        if self.subscriptions >= self.most:
            raise TooManySubscriptionsError(
                f"this server holds as many subscriptions as it may ({self.most}); try again later",
                worker=True,
            )
        if callable(group_bytes):
            group_bytes = group_bytes()
        costs = [shares.cost(share, group, group_bytes, own) for shares, _, share in holders]
        for (shares, key, share), cost in zip(holders, costs, strict=True):
            shares.bytes(key, share, cost)
        worker_cost = own + (group_bytes if new_group else 0)
        if self.held + worker_cost > self.max_bytes:
            raise TooManySubscriptionsError(
                f"this server's subscriptions hold as much memory as they may "
                f"({self.max_bytes} bytes); try again later",
                worker=True,
            )
        for (shares, key, share), cost in zip(holders, costs, strict=True):
            shares.charge(key, share, group, cost)
        self.subscriptions += 1
        self.held += worker_cost
        return group_bytes

    def release(
        self, client: ClientKey, group: Hashable, group_bytes: int, group_ended: bool, own: int
    ) -> None:
        """Give back what :meth:`admit` charged for one subscription of
        ``client`` (``group_ended``: it was its group's last member)."""
        self.subscriptions -= 1
        self.held -= own + (group_bytes if group_ended else 0)
        for shares, key in self._holders(client):
            shares.release(key, group, group_bytes, own)

    def clear(self) -> None:
        """Every subscription ended at once (the worker stops)."""
        self.subscriptions = 0
        self.held = 0
        self.clients.held.clear()
        self.networks.held.clear()
