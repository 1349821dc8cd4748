"""Server CPU per request: what one request costs the server process itself,
with the store stubbed, beside a bare endpoint returning the same bytes.

Five Uvicorn servers run at once, one worker each: newsgraph's app as
deployed by default (``cpu_kept``: compiled execution on, and answers kept
and given again to the same query until the store changes:
``api.operation.answered``), the same making every answer (``cpu_compiled``)
and with compiled execution off too (``cpu``; the three on
:mod:`bench.stubbed`, whose store answers from memory), a bare Starlette endpoint
(:func:`bench.bare.create_precomputed_app`), and beneath it the same bytes
from a plain ASGI callable (:func:`bench.bare.create_raw_app`, ``cpu_floor``:
what Uvicorn costs by itself, which every server here pays). Clients of
:mod:`bench.loadgen` (lean HTTP/1.1 clients in a process of their own, one
request in flight on each keep-alive connection, sending the bytes httpx
would) send one query back to back for a window; the server's CPU time over
the window (user + system, all its threads, from ``/proc/<pid>/stat``) over
the requests it answered is its CPU per request. CPU time rather than
requests per second: on a shared machine the clients and other work take
cores from the server, which slows it down far more than it makes each
request cost. The variants' windows alternate, a few rounds, and each
reports its median, and its ratio to the bare endpoint two ways: the ratio
of the medians, and the median of the rounds' ratios (each round's windows
close in time, so a slower minute slows both).

The decision: every server is measured saturated, under the same closed
load (the same number of connections, each sending its next request as soon
as its answer is in), not at the same offered rate. A server's CPU per
request depends on how busy it is: one that runs out of requests sleeps in
``epoll_wait`` and pays a wake, a loop iteration and their syscalls for a
request or two, where a busy one reads many at a wake. At the same rate the
bare endpoint (a third of the API's cost) would idle two thirds of the time
and pay those wakes, the API hardly ever, which flatters the API; that is
what the httpx clients this replaced did (they cost more per request than
the bare endpoint, which they kept only half busy). So the clients are cheap
enough that even the bare and floor servers always have a request waiting,
and each row says so: ``server_waits_per_request``, how often the server's
event loop gave up the CPU of its own accord, per request (near 0: always
a request waiting), beside ``server_busy`` (server CPU seconds per wall
second: below 1 on a loaded machine even when the server never waits, as
other processes take turns on the cores) and ``client_busy`` (the load
process's). 8 connections by default, as the httpx clients were, so that
only the client changed: enough that the bare and floor servers' loops
wait about once in 25 requests (0.04 a request), the API's more (0.06-0.31:
at times all eight requests are parked in their store calls' thread hops).
More connections make a bare request cheaper still, as each wake finds more
requests ready (the floor's CPU per request at 8, 16, 32 and 64 connections:
0.163, 0.148, 0.141, 0.142 ms, one run on a loaded machine), and moved the
compiled server's ratio from 3.3-3.7x to 3.8-4.0x in runs back to back
(``--clients 32``): the figure depends on the load's concurrency, so say it
with the ratio.

With ``tracing``, two more servers run the same app with OpenTelemetry
tracing on (``cpu_traced``, ``cpu_compiled_traced``), set up as in
production by the ``OTEL_*`` settings alone: the SDK's batch processor and
its OTLP exporter over HTTP, posting to a stand-in collector on loopback in
this process (:mod:`bench.collector`). So the export's work (each span
encoded, each batch posted, in the server's batch thread) is in the server's
CPU; the spans the collector received are in the rows. Every variant's
requests carry a client's ``traceparent`` (which the sampler, the default
``parentbased_always_on``, follows: every operation is traced). The traced
rows compare each to its untraced twin, round by round (the windows of a
round are next to each other in time, so a slower minute on a shared
machine slows both): the median of the rounds' ratios, and their spread.

With a ``sampler`` ratio, two more (``cpu_sampled``,
``cpu_compiled_sampled``) trace as a fleet's edge does with head sampling:
``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` with the ratio as its
argument, and their clients send no ``traceparent``, so each request is a
root the ratio keeps or drops (with the client's sampled context every one
would be kept, and the setting could not be measured). Their rows say how
many spans arrived, about the ratio's share of the full rows'.

The stubbed answers are checked twice: before timing, each server's answer to
each query must be the real app's, byte for byte (the real app on the real
store, in this process); while timing, every response must be those bytes
again, or the run fails. So a stub that skipped work could not pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx2 as httpx
import orjson
from starlette.applications import Starlette

from api.app import create_app
from api.data.changes import Changes
from api.operation.answered import CACHED
from bench.collector import Collector, collecting
from bench.load import MADE, UNTHROTTLED
from bench.loadgen import LoadProcess, Served, Window, WrongAnswer, encode
from bench.queries import FRONT_PAGE, MOBILE
from bench.querying import MemoryGateway
from bench.report import Row
from bench.stubbed import CAPTURE_ENV, TRACING_ENV, Capture
from core.config import ENV_NAMES, Settings
from core.store import Store
from testing.live import serving

#: Sent with every request: responses uncompressed, so the servers are
#: compared on serving the answer, not on gzip (the API compresses responses
#: over 1 kB for clients that accept it; the bare endpoint does not).
HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}
#: With ``get``, the queries go as GET requests, their text and variables in
#: the URL: the API's path for an anonymous, publicly cacheable answer (the
#: objects' cache keys gathered, an ETag and caching headers written).
GET_HEADERS = {"accept-encoding": "identity"}
#: Connections of the load, each with one request in flight: enough that
#: every server, the bare ones included, nearly always has a request
#: waiting (see the module's docstring).
CLIENTS = 8
#: Each server's first window, untimed: plans compiled, caches filled.
WARMUP_S = 1.0
#: A client's trace context, sent with every request of a run with tracing:
#: the traced servers continue it (the sampler keeps every span), the others
#: ignore it.
TRACED_HEADERS = {
    **HEADERS,
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
#: The servers that return the precomputed answers: Starlette's endpoint,
#: and the plain ASGI callable beneath it (Uvicorn's own share).
BARE = ("cpu_bare", "cpu_floor")
#: The servers that keep answers, as newsgraph does by default
#: (``api.operation.answered``); the others make every answer (``MADE``).
KEPT = ("cpu_kept",)
#: Each traced scenario, and the untraced one it is compared with.
TRACED = {"cpu_traced": "cpu", "cpu_compiled_traced": "cpu_compiled"}
#: The same, head-sampled at a ratio, their requests roots (no ``traceparent``).
SAMPLED = {"cpu_sampled": "cpu", "cpu_compiled_sampled": "cpu_compiled"}


def tracing_env(collector: Collector, scenario: str, ratio: float | None = None) -> dict[str, str]:
    """A traced server's settings: the standard ``OTEL_*`` ones, spans sent
    by OTLP over HTTP to ``collector``; the rest the SDK's defaults (its
    sampler, batching, propagators), or with ``ratio`` the sampler
    ``parentbased_traceidratio`` keeping that share of root requests."""
    env = {
        TRACING_ENV: "1",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint(scenario),
        "OTEL_SERVICE_NAME": f"newsgraph-bench-{scenario}",
    }
    if ratio is not None:
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = str(ratio)
    return env


def unthrottled(settings: Settings) -> Settings:
    """``settings`` with :data:`~bench.load.UNTHROTTLED`'s budget."""
    given = Settings.from_env(UNTHROTTLED)
    names = {field for field, env in ENV_NAMES.items() if env in UNTHROTTLED}
    return dataclasses.replace(settings, **{name: getattr(given, name) for name in names})


@dataclass
class Variant:
    """One server answering one query: its windows' CPU ms per request."""

    scenario: str  # cpu (ordinary execution), cpu_compiled, cpu_kept, cpu_bare, cpu_floor
    query: str
    url: str
    pid: int
    path: str
    body: bytes
    expected: bytes
    headers: dict[str, str] = field(default_factory=lambda: HEADERS)
    method: str = "POST"  # GET: the query is in ``path``, and ``body`` is empty
    cpu_ms: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # server CPU s per wall s
    client_busy: list[float] = field(default_factory=list)  # the load's CPU s per wall s
    waits: list[float] = field(default_factory=list)  # the server's event loop's, per request
    requests: int = 0
    #: Of the operations the server answered (both queries, warm-up
    #: included), the share it gave from answers kept (None: not newsgraph).
    kept_share: float | None = None

    @functools.cached_property
    def request(self) -> bytes:
        """The request as the clients send it, encoded once."""
        return encode(self.method, self.url, self.path, self.body, self.headers)


def request_bodies(store: Store) -> dict[str, bytes]:
    """The two timed queries, as the clients post them: the front page, and
    the mobile query on a story with related stories (as ``execution``)."""
    sample = store.articles.find_one(
        {"published": True, "related.2": {"$exists": True}}, {"_id": 1}
    ) or store.articles.find_one({"published": True}, {"_id": 1})
    assert sample is not None, "the corpus has no published article"
    return {
        "front_page": orjson.dumps({"query": FRONT_PAGE}),
        "mobile": orjson.dumps({"query": MOBILE, "variables": {"id": sample["_id"]}}),
    }


def as_get(body: bytes) -> str:
    """A posted request body as a GET request's query string."""
    data = orjson.loads(body)
    params = {"query": data["query"]}
    if data.get("variables") is not None:
        params["variables"] = orjson.dumps(data["variables"]).decode()
    return urlencode(params)


async def _answers(app: Starlette, bodies: dict[str, bytes], get: bool = False) -> dict[str, bytes]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        answers = {}
        for name, body in bodies.items():
            if get:
                response = await client.get(f"/graphql?{as_get(body)}", headers=GET_HEADERS)
            else:
                response = await client.post("/graphql", content=body, headers=HEADERS)
            assert response.status_code == 200, response.text
            assert b'"errors"' not in response.content, response.text
            answers[name] = response.content
    return answers


async def capture(
    store: Store, settings: Settings, bodies: dict[str, bytes], get: bool = False
) -> tuple[Capture, dict[bool, dict[str, bytes]]]:
    """Every store call the queries make, with compiled execution on and off,
    and the real app's answers in each mode (by ``compiled``)."""
    recorder = MemoryGateway(store, settings.store_op_timeout_ms)
    real = {}
    for compiled in (True, False):
        mode = dataclasses.replace(settings, compiled=compiled, answer_cache_bytes=0)
        real[compiled] = await _answers(create_app(mode, store), bodies, get)
        await _answers(create_app(mode, gateway=recorder), bodies, get)
    # What a server that keeps answers asks besides: the loaders' change marker.
    await Changes(recorder, 1.0).read()
    return Capture(recorder.found, recorder.counted, real[True], recorder.on_loop), real


def _kept_share(url: str) -> float:
    """Of the operations a newsgraph server answered, the share given from
    answers it kept (its metrics, ``mode="cached"``): so a row says whether
    it kept any, rather than taking it on trust."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("newsgraph_graphql_execution_total{"):
            mode = line.split('mode="', 1)[1].split('"', 1)[0]
            counts[mode] = float(line.rsplit(" ", 1)[1])
    total = sum(counts.values())
    return counts.get(CACHED, 0.0) / total if total else 0.0


def _window(load: LoadProcess, variant: Variant, clients: int, seconds: float) -> Served:
    """``clients`` connections sending the variant's request back to back for
    about ``seconds`` (see :mod:`bench.loadgen`)."""
    window = Window(variant.url, variant.request, variant.expected, clients, seconds, variant.pid)
    try:
        return load.run(window)
    except WrongAnswer as wrong:
        raise WrongAnswer(f"{variant.scenario} {variant.query}: {wrong}") from None


def _measure(variants: list[Variant], clients: int, seconds: float, rounds: int) -> None:
    with LoadProcess() as load:
        for variant in variants:
            _window(load, variant, clients, min(WARMUP_S, seconds))
        for r in range(rounds):
            # Each round in another order, so no variant always follows the same one.
            for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
                served = _window(load, variant, clients, seconds)
                variant.cpu_ms.append(served.cpu * 1000 / served.answers)
                variant.busy.append(served.cpu / served.wall)
                variant.client_busy.append(served.client_cpu / served.wall)
                variant.waits.append(served.server_waits / served.answers)
                variant.requests += served.answers


async def _check(variants: list[Variant]) -> None:
    """Each server's answer, before any timing, is the real app's."""
    async with httpx.AsyncClient(timeout=30) as client:
        for v in variants:
            response = await client.request(
                v.method, v.url + v.path, content=v.body, headers=v.headers
            )
            if response.content != v.expected:
                raise WrongAnswer(
                    f"{v.scenario} {v.query} answered {response.content[:300]!r}, "
                    f"the real app {v.expected[:300]!r}"
                )


def cpu_scenario(
    store: Store,
    settings: Settings,
    size: int,
    seconds: float = 3.0,
    rounds: int = 3,
    clients: int = CLIENTS,
    *,
    tracing: bool = False,
    sampler: float | None = None,
    get: bool = False,
) -> list[Row]:
    """Rows ``cpu`` and ``cpu_compiled`` (compiled execution off, on; every
    answer made) and ``cpu_kept`` (compiled, answers kept) for each query,
    with their ratio to ``cpu_bare`` on the same query's bytes (and
    ``cpu_floor``'s, the share of that which is Uvicorn's own); with
    ``tracing``, also ``cpu_traced`` and ``cpu_compiled_traced``, with their
    ratio to their untraced twins; with a ``sampler`` ratio (tracing implied),
    also ``cpu_sampled`` and ``cpu_compiled_sampled``, likewise."""
    tracing = tracing or sampler is not None
    traced = TRACED | (SAMPLED if sampler is not None else {})
    bodies = request_bodies(store)
    settings = unthrottled(settings)
    captured, real = asyncio.run(capture(store, settings, bodies, get))
    uvicorn = ["uvicorn", "--factory", "--log-level", "warning", "--workers", "1"]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        # Entered first, so it stops last: the servers send what they still
        # hold when they stop.
        collector = servers.enter_context(collecting()) if tracing else None
        path = Path(tmp) / "capture.pickle"
        captured.save(path)
        variants = []
        servers_ = [
            ("cpu_kept", "bench.stubbed:create_app", True),
            ("cpu_compiled", "bench.stubbed:create_app", True),
            ("cpu", "bench.stubbed:create_app", False),
            ("cpu_bare", "bench.bare:create_precomputed_app", True),
            ("cpu_floor", "bench.bare:create_raw_app", True),
        ]
        if tracing:
            servers_ += [
                ("cpu_compiled_traced", "bench.stubbed:create_app", True),
                ("cpu_traced", "bench.stubbed:create_app", False),
            ]
        if sampler is not None:
            servers_ += [
                ("cpu_compiled_sampled", "bench.stubbed:create_app", True),
                ("cpu_sampled", "bench.stubbed:create_app", False),
            ]
        headers = TRACED_HEADERS if tracing else HEADERS
        plain = HEADERS
        if get:
            headers = {k: v for k, v in headers.items() if k != "content-type"}
            plain = {k: v for k, v in plain.items() if k != "content-type"}
        for scenario, target, compiled in servers_:
            env = {
                CAPTURE_ENV: str(path),
                "NEWSGRAPH_COMPILED": str(compiled).lower(),
                **UNTHROTTLED,
                **({} if scenario in KEPT else MADE),
            }
            if scenario in traced:
                assert collector is not None
                ratio = sampler if scenario in SAMPLED else None
                env.update(tracing_env(collector, scenario, ratio))
            url, pid = servers.enter_context(serving([*uvicorn, target], env, timeout=60))
            for query, body in bodies.items():
                bare = scenario in BARE
                path_ = f"/{query}" if bare else "/graphql"
                expected = real[compiled][query]
                if get:  # (the bare endpoints serve the captured GET answers)
                    path_, body = f"{path_}?{as_get(body)}", b""
                sent = plain if scenario in SAMPLED else headers  # roots: the ratio decides
                variant = Variant(scenario, query, url, pid, path_, body, expected, sent)
                variant.method = "GET" if get else "POST"
                variants.append(variant)
        asyncio.run(_check(variants))
        _measure(variants, clients, seconds, rounds)
        kept = {v.url: _kept_share(v.url) for v in variants if v.scenario not in BARE}
        for v in variants:
            v.kept_share = kept.get(v.url)
        servers.pop_all().close()  # the servers stopped, the collector has their last spans
        exported = {s: collector.received(s) for s in traced} if collector else {}
    return _rows(variants, size, clients, seconds, exported, sampler)


def _rows(
    variants: list[Variant],
    size: int,
    clients: int,
    seconds: float,
    exported: dict[str, int] | None = None,
    sampler: float | None = None,
) -> list[Row]:
    by = {(v.scenario, v.query): v for v in variants}
    bare = {q: statistics.median(v.cpu_ms) for (s, q), v in by.items() if s == "cpu_bare"}
    rows = []
    for v in variants:
        cpu_ms = statistics.median(v.cpu_ms)
        twin = TRACED.get(v.scenario) or SAMPLED.get(v.scenario)
        if twin:
            row = _traced_row(v, by[(twin, v.query)], size, clients, seconds)
            row.extra["server_spans_exported"] = (exported or {}).get(v.scenario, 0)
            # The spans are the server's, for both queries: so are these requests.
            row.extra["server_requests"] = sum(
                u.requests for u in variants if u.scenario == v.scenario
            )
            row.extra["sampler_ratio"] = sampler if v.scenario in SAMPLED else 1.0
            rows.append(row)
            continue
        # Also each round's ratio to the bare endpoint's window of that round
        # (close in time, so a slower minute on a shared machine slows both).
        rounds = [c / b for c, b in zip(v.cpu_ms, by[("cpu_bare", v.query)].cpu_ms, strict=True)]
        rows.append(
            Row(
                v.scenario,
                size,
                "memory",  # the store stubbed: no engine is asked while timing
                ratio=None if v.scenario == "cpu_bare" else cpu_ms / bare[v.query],
                extra={
                    "query": v.query,
                    "cpu_ms_per_request": cpu_ms,
                    "bare_cpu_ms_per_request": bare[v.query],
                    "cpu_ms_rounds": v.cpu_ms,
                    "ratio_rounds": rounds,
                    "ratio_rounds_median": statistics.median(rounds),
                    "ratio_spread": [min(rounds), max(rounds)],
                    "server_busy": statistics.median(v.busy),
                    "server_busy_rounds": v.busy,
                    "client_busy": statistics.median(v.client_busy),
                    "server_waits_per_request": statistics.median(v.waits),
                    "requests": v.requests,
                    "clients": clients,
                    "window_s": seconds,
                    "answers_checked": True,
                    "answers_kept_share": v.kept_share,
                    "method": v.method,
                },
            )
        )
    return rows


def _traced_row(traced: Variant, untraced: Variant, size: int, clients: int, seconds: float) -> Row:
    """A traced variant beside its untraced twin: the median of the rounds'
    ratios (each round's windows close in time), and their spread."""
    ratios = [t / u for t, u in zip(traced.cpu_ms, untraced.cpu_ms, strict=True)]
    return Row(
        traced.scenario,
        size,
        "memory",
        ratio=statistics.median(ratios),
        extra={
            "query": traced.query,
            "cpu_ms_per_request": statistics.median(traced.cpu_ms),
            "untraced_cpu_ms_per_request": statistics.median(untraced.cpu_ms),
            "ratio_rounds": ratios,
            "ratio_spread": [min(ratios), max(ratios)],
            "cpu_ms_rounds": traced.cpu_ms,
            "server_busy": statistics.median(traced.busy),
            "requests": traced.requests,
            "clients": clients,
            "window_s": seconds,
            "answers_checked": True,
        },
    )
