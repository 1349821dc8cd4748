"""Every bound on what live subscriptions hold, per worker and per client: how
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
it holds of its own (its text, its queue, its operation). A subscription
over the client's share or the worker's is refused, as the counts refuse
one (``TOO_MANY_SUBSCRIPTIONS``), before it holds anything. The counts are
checked first (the client's, then the worker's), so a subscription refused
for its count never has its plan made to be measured; then the bytes (the
client's share, then the worker's). A refusal for the worker's bound says
``worker=True``: the client is not at fault, and may try again later.

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
    """What one client's subscriptions hold: their count and bytes, and its
    members per group."""

    subscriptions: int = 0
    bytes: int = 0
    groups: Counter[Hashable] = field(default_factory=Counter)


class Allowance:
    """A worker's subscriptions and the bytes they hold, against ``most``
    subscriptions and ``max_bytes`` in all, ``per_client_count`` and
    ``per_client`` bytes for each client (``sys.maxsize``: unbounded)."""

    def __init__(
        self,
        max_bytes: int,
        per_client: int,
        most: int = sys.maxsize,
        per_client_count: int = sys.maxsize,
    ) -> None:
        self.max_bytes = max_bytes
        self.per_client = per_client
        self.most = most
        self.per_client_count = per_client_count
        #: Subscriptions and bytes held now, over every client.
        self.subscriptions = 0
        self.held = 0
        self._shares: dict[ClientKey, Share] = {}

    def held_by(self, client: ClientKey) -> int:
        share = self._shares.get(client)
        return 0 if share is None else share.bytes

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
        share = self._shares.get(client) or Share()
        if share.subscriptions >= self.per_client_count:
            raise TooManySubscriptionsError(
                f"a client may hold at most {self.per_client_count} subscriptions over all its "
                "connections and event streams; complete one first"
            )
        if self.subscriptions >= self.most:
            raise TooManySubscriptionsError(
                f"this server holds as many subscriptions as it may ({self.most}); try again later",
                worker=True,
            )
        if callable(group_bytes):
            group_bytes = group_bytes()
        client_cost = own + (group_bytes if share.groups[group] == 0 else 0)
        if share.bytes + client_cost > self.per_client:
            raise TooManySubscriptionsError(
                f"a client's subscriptions may hold at most {self.per_client} bytes on a "
                f"server; this one needs {client_cost} more, and {share.bytes} are held "
                "(identical subscriptions hold their document once): complete one first"
            )
        worker_cost = own + (group_bytes if new_group else 0)
        if self.held + worker_cost > self.max_bytes:
            raise TooManySubscriptionsError(
                f"this server's subscriptions hold as much memory as they may "
                f"({self.max_bytes} bytes); try again later",
                worker=True,
            )
        share.subscriptions += 1
        share.bytes += client_cost
        share.groups[group] += 1
        self._shares[client] = share
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
        share = self._shares.get(client)
        if share is None:
            return
        share.subscriptions -= 1
        share.groups[group] -= 1
        share.bytes -= own
        if share.groups[group] <= 0:
            del share.groups[group]
            share.bytes -= group_bytes
        if not share.groups:
            del self._shares[client]

    def clear(self) -> None:
        """Every subscription ended at once (the worker stops)."""
        self.subscriptions = 0
        self.held = 0
        self._shares.clear()
