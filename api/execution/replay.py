"""A plan's store answers, kept for the ordinary execution that answers in its
place when the plan falls back.

A plan asks the store for everything before it writes the answer, and may
then find that it cannot write it exactly as ordinary execution would
(several field errors, whose order only the executor decides; a stored value
of an unexpected type): ordinary execution then answers the operation from
the start. It used to ask the store all over again, so a request priced at 6
store calls made 8, and ``extensions.cost.actual`` exceeded ``requested``.

Here the plan's calls are recorded as they are made (:class:`Recording`: the
arguments and the answer, appended to a list: nothing else on the way of a
plan that does not fall back), and ordinary execution is given a gateway
(:class:`Replaying`) that answers a call the plan made from the record: the
same find or count (the resolvers build the same queries and projections as
the plan, ``api.execution.plan.fetch``), or a lookup by ids that the plan's
lookups with the same projection covered (DataLoaders may batch the ids of a
level differently from the plan's one call per level). Only what the plan
never asked goes to the store. The answers are the plan's, a few
milliseconds old, of the same request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.data.gateway import Chain, Find, Gateway
from api.schema.context import Context

Doc = dict[str, Any]


class Recording(Gateway):
    """A request's gateway that keeps the arguments and answer of each call."""

    def __init__(self, gateway: Gateway) -> None:
        # Made for every planned request: the few attributes a gateway has,
        # copied, rather than Gateway's own checks run again.
        self.store, self.op_timeout_ms, self.slots = (
            gateway.store,
            gateway.op_timeout_ms,
            gateway.slots,
        )
        self.inner = gateway
        self.finds: list[tuple[Find, list[Doc]]] = []
        self.counts: list[tuple[tuple[str, dict[str, Any]], int]] = []

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[Doc]:
        docs = await self.inner.find(collection, query, projection, sort, limit)
        self.finds.append((Find(collection, query, projection, sort, limit), docs))
        return docs

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        found = await self.inner.count(collection, query)
        self.counts.append(((collection, query), found))
        return found

    #: Its calls are its inner gateway's: a chain too, recorded as two finds.
    chains = True

    def can_chain(self) -> bool:
        return self.inner.can_chain()

    async def chain(self, chain: Chain) -> None:
        try:
            await self.inner.chain(chain)
        finally:
            self.finds.extend(chain.seen())


class Replaying(Gateway):
    """A gateway that answers the calls a :class:`Recording` recorded from
    the record, and passes the others on."""

    def __init__(self, recorded: Recording) -> None:
        inner = recorded.inner
        super().__init__(inner.store, inner.op_timeout_ms, inner.slots)
        self.inner = inner
        self.finds = {_find_key(*args): docs for args, docs in recorded.finds}
        self.counts = {_key(args): found for args, found in recorded.counts}
        #: Lookups by ids, by collection and projection: the ids asked, and
        #: the documents found (an id asked and not found is not there).
        self.asked: dict[str, set[Any]] = {}
        self.found: dict[str, dict[Any, Doc]] = {}
        for (collection, query, projection, sort, limit), docs in recorded.finds:
            ids = _ids(query, sort, limit)
            if ids is not None:
                where = _key((collection, _fields(projection)))
                self.asked.setdefault(where, set()).update(ids)
                self.found.setdefault(where, {}).update((d.get("_id"), d) for d in docs)

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[Doc]:
        docs = self.finds.get(_find_key(collection, query, projection, sort, limit))
        if docs is not None:
            return list(docs)
        ids = _ids(query, sort, limit)
        where = _key((collection, _fields(projection)))
        if ids is not None and ids <= self.asked.get(where, set()):
            found = self.found[where]
            return [found[i] for i in ids if i in found]
        return await self.inner.find(collection, query, projection, sort, limit)

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        found = self.counts.get(_key((collection, query)))
        if found is not None:
            return found
        return await self.inner.count(collection, query)


class Replay:
    """One operation's record: the context a plan runs with, and the one
    ordinary execution answers with if the plan falls back."""

    def __init__(self) -> None:
        self.recording: Recording | None = None

    def record(self, context: Any) -> Any:
        """``context`` with a gateway that records (anything but newsgraph's
        context, which plans do not run with, as it is)."""
        if not isinstance(context, Context):
            return context
        self.recording = Recording(context.gateway)
        return _with_gateway(context, self.recording)

    def replay(self, context: Any) -> Any:
        """``context`` with a gateway that answers what the plan asked from
        its record; ``context`` itself if the plan asked nothing."""
        recording = self.recording
        if recording is None or not (recording.finds or recording.counts):
            return context
        return _with_gateway(context, Replaying(recording))


def _with_gateway(context: Context, gateway: Gateway) -> Context:
    """The same asker, feed and cache keys (``api.schema.caching``), with
    ``gateway`` and loaders of its own."""
    return Context(
        gateway,
        context.admin,
        memo=context.memo,
        feed=context.feed,
        owner=context.owner,
        keys=context.keys,
    )


def _key(args: Sequence[Any]) -> str:
    """Arguments as a key: their repr (queries are dicts and lists of plain
    values, built in the same order by the plan and the resolvers)."""
    return repr(args)


def _find_key(
    collection: str,
    query: dict[str, Any],
    projection: dict[str, int] | None,
    sort: list[tuple[str, int]] | None,
    limit: int,
) -> str:
    return _key((collection, query, _fields(projection), sort, limit))


def _fields(projection: dict[str, int] | None) -> tuple[tuple[str, int], ...] | None:
    """A projection as the store reads it: in any order, and ``_id`` comes
    unless excluded (a plan names it, the resolvers do not)."""
    if projection is None:
        return None
    return tuple(sorted((k, v) for k, v in projection.items() if (k, v) != ("_id", 1)))


def _ids(query: dict[str, Any], sort: Any, limit: int) -> set[Any] | None:
    """The ids a lookup by ids asks for (``api.schema.context.by_ids``), or
    None for any other find."""
    if sort or limit or list(query) != ["_id"]:
        return None
    wanted = query["_id"]
    if isinstance(wanted, dict):
        if list(wanted) != ["$in"] or not isinstance(wanted["$in"], list):
            return None
        try:
            return set(wanted["$in"])
        except TypeError:  # an id that is not hashable: not a lookup of ours
            return None
    try:
        return {wanted}
    except TypeError:
        return None
