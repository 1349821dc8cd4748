"""Settings, read from environment variables once and passed down explicitly.

Every setting has a safe default so that ``newsgraph`` runs with none of them set;
the README's configuration table lists the same names (a test keeps them in step).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# -- what a client may ask for, at most ---------------------------------------
# Fixed, not settings: each is part of the schema's contract with clients (its
# descriptions and the README state them). The limits a deployment may tune
# are the settings below. Every client-facing limit's value is in this module.

#: A page of a list when ``first`` is not given, and the most ``first`` may ask.
DEFAULT_PAGE = 20
MAX_PAGE = 100
#: Most ids one ``nodes(ids:)`` may name, and the longest id (longer than any
#: this API hands out).
MAX_NODE_IDS = 100
MAX_NODE_ID = 1024
#: The longest cursor, and the longest ``_id`` inside one.
MAX_CURSOR = 1000
MAX_CURSOR_ID = 256
#: A search: most characters, most words.
MAX_SEARCH_CHARS = 500
MAX_SEARCH_WORDS = 20
#: Most topics ``topicsAny`` may name.
MAX_TOPICS_ANY = 50
#: Longest ``search`` over providers' or topics' names.
MAX_FACET_SEARCH = 100
#: Longest ``operationName`` (graphql-core would echo any it cannot find).
MAX_OPERATION_NAME = 200
#: Longest operation id over WebSocket (the protocol sets none).
MAX_WS_OPERATION_ID = 128


class ConfigError(ValueError):
    """An environment variable holds a value newsgraph cannot use."""


@dataclass(frozen=True)
class Settings:
    #: MongoDB connection string; empty means the embedded in-process engine.
    mongodb_uri: str = ""
    #: Database name inside the MongoDB deployment (or the embedded engine's file).
    db_name: str = "newsgraph"
    #: Folder of the embedded engine's data (no MONGODB_URI); empty means
    #: $XDG_DATA_HOME/newsgraph, else ~/.local/share/newsgraph.
    data_dir: str = ""
    #: Whether the embedded engine keeps its data only while the process runs (throwaway runs).
    memory: bool = False
    #: Whether the embedded engine refuses any query no declared index serves (for tests).
    strict_indexes: bool = False
    #: How long to wait for the store before saying it is unreachable (ms).
    store_timeout_ms: int = 3000
    #: Longest a single store operation may take before it fails (ms).
    store_op_timeout_ms: int = 10000
    #: Longest a request may take, its store calls included, before it stops with TIMEOUT (ms).
    request_timeout_ms: int = 5000
    #: Most store calls one process runs at once (worker threads); more wait, then are shed.
    store_concurrency: int = 16
    #: How long a store call may wait for one of those slots before its request gets 503,
    #: and a request's write for another process's lock on the embedded file (ms).
    store_queue_ms: int = 1000
    #: Files larger than this are rejected unread (bytes).
    max_file_bytes: int = 2 * 1024 * 1024
    #: Documents per bulk write.
    batch_size: int = 500
    #: Processes that parse files during a load; 0 means one per CPU.
    load_workers: int = 0
    #: How long a loader's lease on the database lasts unless renewed; a crashed
    #: loader's lease is taken over once it runs out (seconds).
    loader_lease_s: int = 60
    #: How long a loader waits for another loader's lease before giving up (seconds).
    loader_wait_s: int = 600
    #: Bearer token that lets a request see unpublished articles; empty disables it.
    admin_token: str = ""
    #: Deepest query nesting the API accepts.
    max_query_depth: int = 12
    #: Most aliases one query may use.
    max_aliases: int = 30
    #: Most tokens one query document may have.
    max_tokens: int = 2000
    #: Most objects a query may ask for in the worst case (see api/operation/cost.py).
    max_query_objects: int = 50_000
    #: Most store calls a query may need in the worst case (see api/operation/cost.py).
    max_query_store_calls: int = 250
    #: Largest request body, or WebSocket message, the API reads (bytes).
    max_body_bytes: int = 100_000
    #: Whether the schema may be introspected (GraphiQL needs it).
    introspection: bool = True
    #: Browser origins allowed to call the API (comma-separated); empty allows none.
    cors_origins: str = ""
    #: Responses at least this large are gzipped for clients that accept it (bytes).
    gzip_min_bytes: int = 1000
    #: Longest any cache, a browser's included, may keep an anonymous GET query's
    #: answer; the schema's hints may make it shorter (seconds).
    cache_max_age: int = 60
    #: Longest a shared cache (a CDN, which the loader's purge hook can reach) may
    #: keep one; the schema's hints may make it shorter (seconds).
    cache_shared_max_age: int = 3600
    #: Headers that list a cacheable answer's cache keys (comma-separated header
    #: names); "none" sends none.
    cache_key_headers: str = "Surrogate-Key,Cache-Tag"
    #: Longest each of those headers may be; past it, a type's ids give way to
    #: one key for the type (bytes).
    cache_keys_max_bytes: int = 2000
    #: URL the loader POSTs the cache keys its writes changed to, as JSON; empty: none.
    purge_url: str = ""
    #: Command the loader runs with the cache keys its writes changed as JSON
    #: on its standard input; empty: none.
    purge_command: str = ""
    #: Longest one purge call may take before it is abandoned (ms).
    purge_timeout_ms: int = 2000
    #: host:port where `newsgraph load --watch` serves its Prometheus metrics; empty: nowhere.
    loader_metrics: str = ""
    #: Folder holding GraphiQL's npm packages; empty means the one scripts/install fills.
    graphiql_assets: str = ""
    #: Whether Apollo-style automatic persisted queries are accepted.
    persisted_queries: bool = True
    #: Most persisted queries one worker remembers (least recently used go first).
    persisted_queries_max: int = 1000
    #: Whether persisted-query registrations are kept in the store too, shared
    #: by every worker and host (each worker's own cache stays in front).
    persisted_queries_shared: bool = True
    #: Days a registration no worker has read from the store is kept there.
    persisted_queries_days: int = 30
    #: Most registrations kept in the store (the least recently read go first).
    persisted_queries_stored_max: int = 10_000
    #: Most selections one query may make once its fragments are expanded.
    max_selections: int = 500
    #: Most times one field may be selected at the same place in a query.
    max_field_repeats: int = 20
    #: Memory for parsed and validated queries, per worker (estimated bytes).
    query_cache_bytes: int = 16_000_000
    #: Memory for persisted queries, per worker (estimated bytes).
    persisted_queries_max_bytes: int = 4_000_000
    #: Memory for compiled plans and the documents they hold, per worker (estimated bytes).
    plan_cache_bytes: int = 16_000_000
    #: Whether Prometheus metrics are served at /metrics.
    metrics: bool = True
    #: Whether each request is logged as one JSON line (logger newsgraph.access).
    access_log: bool = True
    #: Whether queries are answered by compiled plans (api/execution/), not a resolver per field.
    compiled: bool = True
    #: Memory for answers kept to give again to the same query, per worker, until
    #: the store changes (estimated bytes); 0 keeps none.
    answer_cache_bytes: int = 16_000_000
    #: How often a worker that keeps answers asks the store whether anything
    #: changed (ms): an answer is given at most two of these after a write.
    answer_cache_check_ms: int = 1000
    #: How often each worker asks the store what became news, for subscriptions (ms).
    subscription_poll_ms: int = 1000
    #: Articles one subscription may have waiting to be sent; a client that falls
    #: this far behind is disconnected (close code 4008).
    subscription_queue: int = 100
    #: Bytes a subscription's connection may hold that its client has not read
    #: (sent to it, or waiting to be), once it holds any: a client past it is
    #: disconnected as one that falls a queue behind is (close code 4008).
    subscription_unsent_bytes: int = 1_000_000
    #: Most subscriptions one worker serves at once, over all its connections.
    subscriptions_max: int = 1000
    #: Most subscriptions one WebSocket connection may hold at once.
    subscriptions_per_connection: int = 20
    #: Most subscriptions one client (an address, or the admin) may hold at once,
    #: over all its connections to one worker.
    subscriptions_per_client: int = 40
    #: Memory one worker's subscriptions may hold, over all its connections
    #: (estimated bytes: their documents and plans, once for identical ones).
    subscriptions_max_bytes: int = 64_000_000
    #: Memory one client's subscriptions may hold on one worker (estimated bytes).
    subscriptions_per_client_bytes: int = 4_000_000
    #: Most subscriptions the clients of one network (an IPv6 /48, an IPv4 /24)
    #: may hold at once on one worker: a quarter of it, so that one holder of
    #: many addresses cannot take it all.
    subscriptions_per_network: int = 250
    #: Memory the subscriptions of one network's clients may hold on one
    #: worker (estimated bytes).
    subscriptions_per_network_bytes: int = 16_000_000
    #: Most WebSocket connections one worker holds at once.
    ws_connections_max: int = 1000
    #: Most WebSocket connections one client (an address, or the admin) may hold
    #: at once on one worker; as many more may wait for their connection_init.
    ws_connections_per_client: int = 16
    #: Most WebSocket connections the clients of one network (an IPv6 /48, an
    #: IPv4 /24) may hold at once on one worker.
    ws_connections_per_network: int = 250
    #: How long a new WebSocket connection whose handshake carried the admin
    #: token may take to send connection_init (seconds).
    ws_init_timeout_s: int = 10
    #: How long any other new WebSocket connection may take to send
    #: connection_init (seconds).
    ws_anonymous_init_timeout_s: int = 3
    #: How often the server pings each WebSocket client; one silent for two of
    #: these is disconnected (seconds).
    ws_keepalive_s: int = 20
    #: How often a subscription over Server-Sent Events is sent a comment when
    #: it has nothing else to send, so proxies keep its connection (seconds).
    sse_heartbeat_s: int = 15
    #: How long a connection may wait without a request, new or after an answer (seconds).
    idle_timeout_s: int = 5
    #: How long a request's headers may take to arrive, from connecting or from
    #: the previous answer (seconds).
    header_timeout_s: int = 10
    #: How long a client may read nothing of its answer before it is disconnected (seconds).
    send_timeout_s: int = 15
    #: Most connections one worker holds open; 0 means three quarters of its
    #: open-files limit, at most 10,000 (see api/http/connections.py).
    max_connections: int = 0
    #: serve --workers: a worker whose event loop has not beaten for this long
    #: is killed and replaced (seconds; see api/http/beats.py).
    worker_timeout_s: int = 30
    #: Proxies whose X-Forwarded-For names the client (addresses or networks,
    #: comma-separated); empty: the connection's own address is the client's.
    trusted_proxies: str = ""
    #: Each tier's cost budget (api/operation/throttle.py): points refilled per
    #: second, the most held at once, and operations running at once.
    anonymous_points_per_s: int = 1_000
    anonymous_burst: int = 60_000
    anonymous_concurrency: int = 8
    key_points_per_s: int = 5_000
    key_burst: int = 120_000
    key_concurrency: int = 32
    admin_points_per_s: int = 50_000
    admin_burst: int = 1_000_000
    admin_concurrency: int = 64
    #: Operations priced at least this many points share a small pool of their own.
    heavy_query_points: int = 25_000
    #: How many of those one worker runs at once; more are shed with 503.
    heavy_query_concurrency: int = 2
    #: Where each client's budget is kept: per worker ("worker"), or in the
    #: store, one budget per client for the whole fleet ("store").
    budgets: str = "worker"
    #: With budgets in the store: most buckets kept there (one per client that
    #: spent within its refill window); past it, clients with none share one
    #: bucket per tier (api/operation/throttle.py).
    budgets_stored_max: int = 50_000
    #: Trusted documents (api/operation/trusted.py): off, allow or enforce.
    trusted_documents: str = "off"
    #: The manifest of trusted documents (Apollo's, Relay's or GraphQL Codegen's).
    trusted_manifest: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        # Any: each value was converted to its field's declared type above it.
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_NAMES[f.name]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            if f.type == "bool":
                if raw.lower() not in _BOOLS:
                    raise ConfigError(f"{name} must be true or false, got {raw!r}")
                values[f.name] = _BOOLS[raw.lower()]
            elif f.type == "int":
                try:
                    number = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
                if number < 0 or (number == 0 and f.name not in _ZERO_ALLOWED):
                    raise ConfigError(f"{name} must be positive, got {number}")
                values[f.name] = number
            else:
                choices = _CHOICES.get(f.name)
                if choices is not None and raw.lower() not in choices:
                    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
                values[f.name] = raw.lower() if choices is not None else raw
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings that cannot be used together
        or as written (those the types above do not catch)."""
        if self.purge_url and self.purge_command:
            raise ConfigError("set NEWSGRAPH_PURGE_URL or NEWSGRAPH_PURGE_COMMAND, not both")
        if self.purge_url and not self.purge_url.startswith(("http://", "https://")):
            raise ConfigError(f"NEWSGRAPH_PURGE_URL must be an http(s) URL, got {self.purge_url!r}")
        if self.purge_command:
            try:
                argv = shlex.split(self.purge_command)
            except ValueError as exc:
                raise ConfigError(f"NEWSGRAPH_PURGE_COMMAND: {exc}") from None
            if not argv:
                raise ConfigError("NEWSGRAPH_PURGE_COMMAND names no command")
        for name in self.key_headers():
            if not _TOKEN.fullmatch(name):
                raise ConfigError(f"NEWSGRAPH_CACHE_KEY_HEADERS: {name!r} is no header name")
        if self.loader_metrics:
            _, sep, port = self.loader_metrics.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"NEWSGRAPH_LOADER_METRICS must be host:port, got {self.loader_metrics!r}"
                )

    def key_headers(self) -> tuple[str, ...]:
        """The headers that list cache keys (``none``: no header)."""
        names = tuple(n.strip() for n in self.cache_key_headers.split(",") if n.strip())
        return () if [n.lower() for n in names] == ["none"] else names


#: An HTTP header's name (RFC 9110's token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: Text settings that take one of a few words.
_CHOICES: dict[str, tuple[str, ...]] = {
    "trusted_documents": ("off", "allow", "enforce"),
    "budgets": ("worker", "store"),
}

#: Whole-number settings where 0 means "choose for me".
_ZERO_MEANS_AUTO = frozenset({"load_workers", "max_connections"})
#: Settings whose 0 turns what they size off.
_ZERO_MEANS_NONE = frozenset({"answer_cache_bytes"})
_ZERO_ALLOWED = _ZERO_MEANS_AUTO | _ZERO_MEANS_NONE

_BOOLS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}

#: Settings field -> environment variable.
ENV_NAMES: dict[str, str] = {
    "mongodb_uri": "MONGODB_URI",
    "db_name": "NEWSGRAPH_DB",
    "data_dir": "NEWSGRAPH_DATA_DIR",
    "memory": "NEWSGRAPH_MEMORY",
    "strict_indexes": "NEWSGRAPH_STRICT_INDEXES",
    "store_timeout_ms": "NEWSGRAPH_STORE_TIMEOUT_MS",
    "store_op_timeout_ms": "NEWSGRAPH_STORE_OP_TIMEOUT_MS",
    "request_timeout_ms": "NEWSGRAPH_REQUEST_TIMEOUT_MS",
    "store_concurrency": "NEWSGRAPH_STORE_CONCURRENCY",
    "store_queue_ms": "NEWSGRAPH_STORE_QUEUE_MS",
    "max_file_bytes": "NEWSGRAPH_MAX_FILE_BYTES",
    "batch_size": "NEWSGRAPH_BATCH_SIZE",
    "load_workers": "NEWSGRAPH_LOAD_WORKERS",
    "loader_lease_s": "NEWSGRAPH_LOADER_LEASE_S",
    "loader_wait_s": "NEWSGRAPH_LOADER_WAIT_S",
    "admin_token": "NEWSGRAPH_ADMIN_TOKEN",
    "max_query_depth": "NEWSGRAPH_MAX_QUERY_DEPTH",
    "max_aliases": "NEWSGRAPH_MAX_ALIASES",
    "max_tokens": "NEWSGRAPH_MAX_TOKENS",
    "max_query_objects": "NEWSGRAPH_MAX_QUERY_OBJECTS",
    "max_query_store_calls": "NEWSGRAPH_MAX_QUERY_STORE_CALLS",
    "max_body_bytes": "NEWSGRAPH_MAX_BODY_BYTES",
    "introspection": "NEWSGRAPH_INTROSPECTION",
    "cors_origins": "NEWSGRAPH_CORS_ORIGINS",
    "gzip_min_bytes": "NEWSGRAPH_GZIP_MIN_BYTES",
    "cache_max_age": "NEWSGRAPH_CACHE_MAX_AGE",
    "cache_shared_max_age": "NEWSGRAPH_CACHE_SHARED_MAX_AGE",
    "cache_key_headers": "NEWSGRAPH_CACHE_KEY_HEADERS",
    "cache_keys_max_bytes": "NEWSGRAPH_CACHE_KEYS_MAX_BYTES",
    "purge_url": "NEWSGRAPH_PURGE_URL",
    "purge_command": "NEWSGRAPH_PURGE_COMMAND",
    "purge_timeout_ms": "NEWSGRAPH_PURGE_TIMEOUT_MS",
    "loader_metrics": "NEWSGRAPH_LOADER_METRICS",
    "graphiql_assets": "NEWSGRAPH_GRAPHIQL_ASSETS",
    "persisted_queries": "NEWSGRAPH_PERSISTED_QUERIES",
    "persisted_queries_max": "NEWSGRAPH_PERSISTED_QUERIES_MAX",
    "persisted_queries_shared": "NEWSGRAPH_PERSISTED_QUERIES_SHARED",
    "persisted_queries_days": "NEWSGRAPH_PERSISTED_QUERIES_DAYS",
    "persisted_queries_stored_max": "NEWSGRAPH_PERSISTED_QUERIES_STORED_MAX",
    "max_selections": "NEWSGRAPH_MAX_SELECTIONS",
    "max_field_repeats": "NEWSGRAPH_MAX_FIELD_REPEATS",
    "query_cache_bytes": "NEWSGRAPH_QUERY_CACHE_BYTES",
    "persisted_queries_max_bytes": "NEWSGRAPH_PERSISTED_QUERIES_MAX_BYTES",
    "plan_cache_bytes": "NEWSGRAPH_PLAN_CACHE_BYTES",
    "metrics": "NEWSGRAPH_METRICS",
    "access_log": "NEWSGRAPH_ACCESS_LOG",
    "compiled": "NEWSGRAPH_COMPILED",
    "answer_cache_bytes": "NEWSGRAPH_ANSWER_CACHE_BYTES",
    "answer_cache_check_ms": "NEWSGRAPH_ANSWER_CACHE_CHECK_MS",
    "subscription_poll_ms": "NEWSGRAPH_SUBSCRIPTION_POLL_MS",
    "subscription_queue": "NEWSGRAPH_SUBSCRIPTION_QUEUE",
    "subscription_unsent_bytes": "NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES",
    "subscriptions_max": "NEWSGRAPH_SUBSCRIPTIONS_MAX",
    "subscriptions_per_connection": "NEWSGRAPH_SUBSCRIPTIONS_PER_CONNECTION",
    "subscriptions_per_client": "NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT",
    "subscriptions_max_bytes": "NEWSGRAPH_SUBSCRIPTIONS_MAX_BYTES",
    "subscriptions_per_client_bytes": "NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT_BYTES",
    "subscriptions_per_network": "NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK",
    "subscriptions_per_network_bytes": "NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK_BYTES",
    "ws_connections_max": "NEWSGRAPH_WS_CONNECTIONS_MAX",
    "ws_connections_per_client": "NEWSGRAPH_WS_CONNECTIONS_PER_CLIENT",
    "ws_connections_per_network": "NEWSGRAPH_WS_CONNECTIONS_PER_NETWORK",
    "ws_init_timeout_s": "NEWSGRAPH_WS_INIT_TIMEOUT_S",
    "ws_anonymous_init_timeout_s": "NEWSGRAPH_WS_ANONYMOUS_INIT_TIMEOUT_S",
    "ws_keepalive_s": "NEWSGRAPH_WS_KEEPALIVE_S",
    "sse_heartbeat_s": "NEWSGRAPH_SSE_HEARTBEAT_S",
    "idle_timeout_s": "NEWSGRAPH_IDLE_TIMEOUT_S",
    "header_timeout_s": "NEWSGRAPH_HEADER_TIMEOUT_S",
    "send_timeout_s": "NEWSGRAPH_SEND_TIMEOUT_S",
    "max_connections": "NEWSGRAPH_MAX_CONNECTIONS",
    "worker_timeout_s": "NEWSGRAPH_WORKER_TIMEOUT_S",
    "trusted_proxies": "NEWSGRAPH_TRUSTED_PROXIES",
    "anonymous_points_per_s": "NEWSGRAPH_ANONYMOUS_POINTS_PER_S",
    "anonymous_burst": "NEWSGRAPH_ANONYMOUS_BURST",
    "anonymous_concurrency": "NEWSGRAPH_ANONYMOUS_CONCURRENCY",
    "key_points_per_s": "NEWSGRAPH_KEY_POINTS_PER_S",
    "key_burst": "NEWSGRAPH_KEY_BURST",
    "key_concurrency": "NEWSGRAPH_KEY_CONCURRENCY",
    "admin_points_per_s": "NEWSGRAPH_ADMIN_POINTS_PER_S",
    "admin_burst": "NEWSGRAPH_ADMIN_BURST",
    "admin_concurrency": "NEWSGRAPH_ADMIN_CONCURRENCY",
    "heavy_query_points": "NEWSGRAPH_HEAVY_QUERY_POINTS",
    "heavy_query_concurrency": "NEWSGRAPH_HEAVY_QUERY_CONCURRENCY",
    "budgets": "NEWSGRAPH_BUDGETS",
    "budgets_stored_max": "NEWSGRAPH_BUDGETS_STORED_MAX",
    "trusted_documents": "NEWSGRAPH_TRUSTED_DOCUMENTS",
    "trusted_manifest": "NEWSGRAPH_TRUSTED_MANIFEST",
}
