"""The memory live subscriptions hold, bounded in bytes per worker and per client.

The counts (``NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT``, ``NEWSGRAPH_SUBSCRIPTIONS_MAX``)
bound how many subscriptions run, not what they hold: a subscription keeps
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
one (``TOO_MANY_SUBSCRIPTIONS``), before it holds anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from api.errors import TooManySubscriptionsError

#: Who a share is kept for: an identity's key (``api.schema.context.Identity``).
ClientKey = str


@dataclass
class Share:
    """What one client's subscriptions hold: bytes, and its members per group."""

    bytes: int = 0
    groups: Counter[Hashable] = field(default_factory=Counter)


class Allowance:
    """Bytes held by a worker's subscriptions, against ``max_bytes`` in all
    and ``per_client`` for each client."""

    def __init__(self, max_bytes: int, per_client: int) -> None:
        self.max_bytes = max_bytes
        self.per_client = per_client
        #: Bytes held now, over every client.
        self.held = 0
        self._shares: dict[ClientKey, Share] = {}

    def held_by(self, client: ClientKey) -> int:
        share = self._shares.get(client)
        return 0 if share is None else share.bytes

    def admit(
        self, client: ClientKey, group: Hashable, group_bytes: int, new_group: bool, own: int
    ) -> None:
        """Charge a subscription of ``client`` joining ``group`` (new to the
        worker if ``new_group``), which holds ``group_bytes`` for all its
        members and ``own`` for this one; or refuse it, charging nothing."""
        share = self._shares.get(client) or Share()
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
        share.bytes += client_cost
        share.groups[group] += 1
        self._shares[client] = share
        self.held += worker_cost

    def release(
        self, client: ClientKey, group: Hashable, group_bytes: int, group_ended: bool, own: int
    ) -> None:
        """Give back what :meth:`admit` charged for one subscription of
        ``client`` (``group_ended``: it was its group's last member)."""
        self.held -= own + (group_bytes if group_ended else 0)
        share = self._shares.get(client)
        if share is None:
            return
        share.groups[group] -= 1
        share.bytes -= own
        if share.groups[group] <= 0:
            del share.groups[group]
            share.bytes -= group_bytes
        if not share.groups:
            del self._shares[client]

    def clear(self) -> None:
        """Every subscription ended at once (the worker stops)."""
        self.held = 0
        self._shares.clear()
