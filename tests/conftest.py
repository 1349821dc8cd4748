"""Fixtures shared by every test: the two engines, and sample articles.

Store and loader tests take the ``store`` fixture and so run twice: on the
embedded engine and on a real server over the wire (see ``testing/wire.py``).
Each test gets a database of its own. With ``NEWSGRAPH_REQUIRE_WIRE=1`` a
missing wire server fails the run instead of skipping those tests.

The embedded engine's files go to a folder of this run's (``XDG_DATA_HOME``
points there, for this process and every server or loader it starts), and it
runs strict (``NEWSGRAPH_STRICT_INDEXES``, unless set to false): a query that
no declared index serves fails the test that sent it, as a collection scan
would be refused by a MongoDB running with ``notablescan``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator

import pytest
from anyio._backends._asyncio import WorkerThread

from core.config import Settings
from core.store import Store, connect
from testing.wire import WireServer, find_wire_server

# API fixtures, for tests/api and the README's example queries.
from tests.api.fixtures import (  # noqa: F401
    api_settings,
    client,
    gql,
    live_server,
    loaded,
    round_trips,
)

REQUIRE_WIRE = os.environ.get("NEWSGRAPH_REQUIRE_WIRE") == "1"
#: NEWSGRAPH_COMPILED=false runs the suite on ordinary execution alone.
COMPILED = Settings.from_env(
    {"NEWSGRAPH_COMPILED": os.environ.get("NEWSGRAPH_COMPILED", "")}
).compiled

_wire: dict[str, object] = {}

_DATA = tempfile.mkdtemp(prefix="newsgraph-test-data-")
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
os.environ["XDG_DATA_HOME"] = _DATA
os.environ.pop("NEWSGRAPH_DATA_DIR", None)
os.environ.setdefault("NEWSGRAPH_STRICT_INDEXES", "true")
# Tests stop the CLI's processes with Ctrl-C (SIGINT). A suite started in the
# background by a non-interactive shell has SIGINT ignored, and an ignored
# signal stays ignored in every child: each such stop would wait out its
# timeout. Python's own handler is not inherited, so children start with the
# default and turn it into KeyboardInterrupt as they would at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
STRICT = Settings.from_env(
    {"NEWSGRAPH_STRICT_INDEXES": os.environ["NEWSGRAPH_STRICT_INDEXES"]}
).strict_indexes


@pytest.fixture(scope="session")
def wire_server() -> Iterator[WireServer]:
    server, how = find_wire_server()
    _wire["how"] = how
    if server is None:
        if REQUIRE_WIRE:
            pytest.fail(f"NEWSGRAPH_REQUIRE_WIRE=1 but {how}", pytrace=False)
        pytest.skip(f"wire tests skipped: {how}")
    yield server
    server.stop()
    if server.data_dir:
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(params=["embedded", pytest.param("wire", marks=pytest.mark.wire)])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


#: The suite's apps make every answer: its tests assert what making one
#: takes (store calls, logs) and read what a write just changed, neither of
#: which a kept answer shows. tests/api/test_answered.py turns keeping on and
#: proves a kept answer the same as a made one, on every way in.
KEEP_NO_ANSWERS = 0


@pytest.fixture
def settings(request: pytest.FixtureRequest, engine: str) -> Iterator[Settings]:
    """Settings that point at a fresh, empty database on the test's engine."""
    db_name = f"t_{uuid.uuid4().hex[:12]}"
    if engine == "embedded":
        yield Settings(
            db_name=db_name,
            compiled=COMPILED,
            strict_indexes=STRICT,
            answer_cache_bytes=KEEP_NO_ANSWERS,
        )
        return
    server: WireServer = request.getfixturevalue("wire_server")
    # Requests get 30 s, not 5: on a machine busy with other work the wire
    # server's scans can take seconds, and a TIMEOUT then is the machine's,
    # not the code's (the deadline's own tests set theirs).
    yield Settings(
        mongodb_uri=server.uri,
        db_name=db_name,
        store_timeout_ms=3000,
        request_timeout_ms=30_000,
        compiled=COMPILED,
        answer_cache_bytes=KEEP_NO_ANSWERS,
    )
    store = connect(Settings(mongodb_uri=server.uri, db_name=db_name, store_timeout_ms=1000))
    # The server may be down after a fault test; its data directory goes anyway.
    with contextlib.suppress(Exception):
        store.db.client.drop_database(db_name)
    store.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = connect(settings)
    yield store
    if store.embedded:
        store.db.client.drop_database(settings.db_name)
    store.close()


_wire_tests: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _wire_tests.update(item.nodeid for item in items if item.get_closest_marker("wire"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on the wire server, so CI output shows it."""
    passed = terminalreporter.stats.get("passed", [])
    on_wire = sum(1 for r in passed if r.nodeid in _wire_tests)
    how = _wire.get("how", "not needed by the selected tests")
    terminalreporter.write_line(f"wire server: {how}; {on_wire} tests passed on it")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With NEWSGRAPH_REQUIRE_WIRE=1, a run in which no wire test passed fails."""
    if not REQUIRE_WIRE or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = reporter.stats.get("passed", []) if reporter else []
    if not any(r.nodeid in _wire_tests for r in passed):
        session.exitstatus = 1
        if reporter:
            reporter.write_line(
                "NEWSGRAPH_REQUIRE_WIRE=1 but no test ran on the wire server", red=True
            )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Let the process exit: stop anyio's worker threads whose event loop is gone.

    anyio stops a worker thread when the task it took for its loop's root task
    ends. A thread started from a task that was already ending (graphql-core's
    abandoned field tasks, cancelled as a test's ``asyncio.run`` closes its
    loop) waits for work forever, and a non-daemon thread keeps the
    interpreter from exiting: the suite passed, then hung until CI's limit.
    """
    for thread in threading.enumerate():
        loop = getattr(thread, "loop", None)
        if isinstance(thread, WorkerThread) and loop is not None and loop.is_closed():
            with contextlib.suppress(queue.Full):
                thread.queue.put_nowait(None)  # its own shutdown command
