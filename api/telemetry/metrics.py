"""Prometheus metrics, served at ``/metrics``.

Each app gets its own registry, so several apps in one process (the tests)
keep separate counts. With several workers (``serve --workers N``) each worker
counts its own requests, and says which it is (``newsgraph_worker{pid}``):
scrape each, or sum by that label.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response


class FeedCounts(Protocol):
    """What a feed of subscriptions counts (``api.live.feed.Feed``)."""

    @property
    def count(self) -> int: ...

    @property
    def groups(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    polls: int
    dropped: int
    dropped_unsent: int
    answered: int


class LoopReadCounts(Protocol):
    """What the event loop did with the store reads offered to it
    (``api.data.gateway.LoopReads``)."""

    answered: int
    overran: int
    busy: int
    held: int


# Seconds; a front-page query is milliseconds on MongoDB, seconds on a slow store.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "newsgraph_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "newsgraph_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "newsgraph_graphql_errors",
            "Errors in GraphQL responses, by code (GRAPHQL_VALIDATION_FAILED for "
            "parse and validation errors, INTERNAL for masked ones).",
            ["code"],
            registry=self.registry,
        )
        self.graphql_executions = Counter(
            "newsgraph_graphql_execution",
            "GraphQL operations executed, by how: a compiled plan, or ordinary "
            "execution for what the planner does not cover (api/execution/compiled.py).",
            ["mode"],
            registry=self.registry,
        )
        # Which process answered: with `serve --workers N` each worker counts
        # its own requests (scrape each, or sum them by this label).
        Gauge(
            "newsgraph_worker",
            "This worker process (its pid as a label): always 1.",
            ["pid"],
            registry=self.registry,
        ).labels(str(os.getpid())).set(1)
        self.store_round_trips = _Tally(
            Counter(
                "newsgraph_store_round_trips",
                "Queries sent to the store (one per find or count).",
                registry=self.registry,
            )
        )

        # Each labelled child, once: looking one up by its labels costs more
        # than counting (the labels are few: routes, methods and statuses are
        # each mapped to a small known set before they get here).
        self._requests: dict[tuple[str, str, int], _Tally] = {}
        self._latencies: dict[str, Any] = {}
        self._executions: dict[str, _Tally] = {}
        #: Every count kept by a :class:`_Tally`, added to its counter when scraped.
        self._tallies = [self.store_round_trips]

    def request_counter(self, route: str, method: str, status: int) -> _Tally:
        key = (route, method, status)
        child = self._requests.get(key)
        if child is None:
            labelled = self.requests.labels(route, method, str(status))
            child = self._requests[key] = self._tally(labelled)
        return child

    def latency_of(self, route: str) -> Any:
        child = self._latencies.get(route)
        if child is None:
            child = self._latencies[route] = self.latency.labels(route)
        return child

    def execution_counter(self, mode: str) -> _Tally:
        """The count of operations run in ``mode`` (a few known words:
        ``api.execution.compiled.count``)."""
        child = self._executions.get(mode)
        if child is None:
            child = self._executions[mode] = self._tally(self.graphql_executions.labels(mode))
        return child

    def _tally(self, counter: Any) -> _Tally:
        tally = _Tally(counter)
        self._tallies.append(tally)
        return tally

    def follow(self, feed: FeedCounts) -> None:
        """Count the subscriptions of ``feed`` (``api.live.feed``)."""
        self.registry.register(_FeedCollector(feed))

    def follow_loop_reads(self, counts: LoopReadCounts) -> None:
        """Count what the event loop did with the store reads offered to it
        (``api.data.gateway``: an embedded store's small reads)."""
        self.registry.register(_LoopReadsCollector(counts))

    async def endpoint(self, request: Request) -> Response:
        for tally in self._tallies:
            tally.flush()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _Tally:
    """A count of every request, kept as a plain number and added to its
    Prometheus counter when the metrics are scraped: the counter's own
    ``inc`` takes a lock and makes two checks, three calls more on each of
    several counts of every request. The counters are read only through
    :meth:`Metrics.endpoint`, which adds them first, on the event loop where
    they are counted."""

    __slots__ = ("count", "counter")

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.count = 0

    def inc(self, amount: int = 1) -> None:
        self.count += amount

    def flush(self) -> None:
        if self.count:
            self.counter.inc(self.count)
            self.count = 0


class _FeedCollector(Collector):
    """Read from the feed when scraped: it keeps its own counts."""

    def __init__(self, feed: FeedCounts) -> None:
        self.feed = feed

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "newsgraph_subscriptions", "Subscriptions this worker serves now.", self.feed.count
        )
        yield CounterMetricFamily(
            "newsgraph_subscription_polls",
            "Polls of the store for news (one per interval while any subscription is open).",
            self.feed.polls,
        )
        yield CounterMetricFamily(
            "newsgraph_subscriptions_dropped",
            "Subscriptions dropped because their client fell a whole queue behind, or "
            "left more unread than NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES.",
            self.feed.dropped,
        )
        yield CounterMetricFamily(
            "newsgraph_subscriptions_dropped_unsent",
            "Of those, subscriptions dropped because their connection held more than "
            "NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES its client had not read.",
            self.feed.dropped_unsent,
        )
        yield GaugeMetricFamily(
            "newsgraph_subscription_groups",
            "Distinct subscriptions this worker serves now (identical ones share each answer).",
            self.feed.groups,
        )
        yield GaugeMetricFamily(
            "newsgraph_subscription_bytes",
            "Estimated bytes this worker's subscriptions hold (NEWSGRAPH_SUBSCRIPTIONS_MAX_BYTES).",
            self.feed.bytes,
        )
        yield CounterMetricFamily(
            "newsgraph_subscription_answers",
            "Articles answered for subscriptions: once per group of identical ones.",
            self.feed.answered,
        )


class _LoopReadsCollector(Collector):
    """Read from the gateway's counts when scraped (kept as plain numbers: a
    store read is counted on the event loop, where it is answered)."""

    def __init__(self, counts: LoopReadCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "newsgraph_store_on_loop",
            "Store reads offered to the event loop (an embedded store's reads for a request), "
            "by outcome: answered on the loop; overran its bound (api.data.gateway.ON_LOOP_MS) "
            "and was asked again in a worker thread; busy (a query slot, the file or the "
            "connection not free at once) and asked in a thread; held (not tried: reads "
            "that overran used up the loop time they may waste) and asked in a thread.",
            labels=["outcome"],
        )
        counts = self.counts
        for outcome, value in (
            ("answered", counts.answered),
            ("overran", counts.overran),
            ("busy", counts.busy),
            ("held", counts.held),
        ):
            family.add_metric([outcome], value)
        yield family
