"""The ``newsgraph`` command: a thin layer over the Python API.

Each command is a few lines that call ``loaders``, ``api`` or ``core.store``;
a library user can call the same functions.

Each command's exit statuses are declared once (:data:`EXIT_STATUS`): its
``--help`` lists them from there and a test holds the README's table to them.
Messages go through :func:`_console`, which does not wrap lines when the
output is not a terminal, so that each message stays one line in a log.

Ctrl-C and SIGTERM stop ``load``, ``serve`` and ``facets`` in order (:class:`_Stopping`):
a load ends after the batch it is on, closes its parse pool (whose processes
would outlive a loader that SIGTERM's default ends at once), lets the loader
lease go and reports what it did. Then the command ends by that signal, as its
default would have (status 130 or 143 in a shell): a load stopped is not done.
``serve`` and ``load --watch`` run until stopped, so Ctrl-C is their normal
end (status 0), and SIGTERM ends them by that signal once stopped, as servers do.
A recount (``facets``) lets the loader lease go before it ends by the signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import socket
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from core.config import ConfigError, Settings
from core.store import Store, StoreUnavailable, connect
from newsgraph import __version__

if TYPE_CHECKING:  # loaders is imported when a command needs it, not at start
    from api.http.beats import Beater, Beats
    from api.http.health import LoadBoard, ProbeProcess
    from loaders.facets import FacetChange, Recount
    from loaders.progress import LoadProgress
    from loaders.report import LoadReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_LISTEN = 0, 1, 2, 3, 4

#: What each command's exit status means: its --help and the README say the same.
EXIT_STATUS: dict[str, dict[int, str]] = {
    "load": {
        EXIT_OK: "every file loaded",
        EXIT_FAILED: "some file failed or was skipped, or a directory named held no article "
        "file (the rest loaded)",
        EXIT_USAGE: "usage error: an option, path or setting is wrong",
        EXIT_STORE: "the store could not be reached, or another loader held the lease longer "
        "than NEWSGRAPH_LOADER_WAIT_S",
    },
    "serve": {
        EXIT_OK: "stopped with Ctrl-C",
        EXIT_FAILED: "the app failed to start (the log says why)",
        EXIT_USAGE: "usage error: an option, path or setting is wrong",
        EXIT_STORE: "with --load: the store could not be reached",
        EXIT_LISTEN: "cannot listen on --host and --port (the port is taken, or not allowed); "
        "checked before anything is loaded",
    },
    "keys": {
        EXIT_OK: "the key was created, listed or revoked",
        EXIT_FAILED: "revoke: no live key has that id (none by it, or it was revoked already)",
        EXIT_USAGE: "usage error: an argument, option or setting is wrong",
        EXIT_STORE: "the store could not be reached",
    },
    "facets": {
        EXIT_OK: "the counts were right, or --rebuild replaced those that were not",
        EXIT_FAILED: "without --rebuild: some counts differ from the articles (listed)",
        EXIT_USAGE: "usage error: an option or setting is wrong",
        EXIT_STORE: "the store could not be reached, or another loader held the lease longer "
        "than NEWSGRAPH_LOADER_WAIT_S",
    },
}

_STORE_HELP = (
    "The store is MongoDB at MONGODB_URI (database NEWSGRAPH_DB, default newsgraph); "
    "with MONGODB_URI unset, the embedded engine, whose data lives in NEWSGRAPH_DATA_DIR "
    "(default ~/.local/share/newsgraph; serve --memory for a throwaway one)."
)


def _epilog(command: str) -> str:
    """``--help``'s closing part: the store, then the exit statuses (``\\b``
    keeps click from rewrapping the list)."""
    codes = "\n".join(
        textwrap.fill(meaning, 76, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
        for code, meaning in EXIT_STATUS[command].items()
    )
    return f"{_STORE_HELP}\n\n\b\nExit status:\n{codes}"


def _console(stderr: bool = False) -> Console:
    """A console for messages. On a terminal rich wraps them to its width; to
    a pipe or a file it would wrap them at 80 columns, splitting a message
    across lines of a log, so there it writes each message as one line."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _open_store(settings: Settings) -> Store:
    store = connect(settings)
    store.ping()
    return store


def _reach(settings: Settings, err: Console) -> Store:
    """The store, answering; or exit 3 saying where it is not."""
    try:
        return _open_store(settings)
    except StoreUnavailable as exc:
        _error(err, str(exc))
        sys.exit(EXIT_STORE)


def _reach_noting(settings: Settings, err: Console) -> Store:
    """The store, answering (or exit 3); on the embedded engine, a note that
    MONGODB_URI is not set, and where the data this command reads lives."""
    store = _reach(settings, err)
    if store.embedded:
        err.print(f"MONGODB_URI is not set: using {store.where}", highlight=False, markup=False)
    return store


def _error(err: Console, message: str) -> None:
    err.print("[red]error:[/] ", end="", highlight=False)
    err.print(message, highlight=False, markup=False)


class _Stopping:
    """Ctrl-C (SIGINT) and SIGTERM while a command runs (from the main thread).

    The first sets :attr:`event`, which the command's loads watch
    (``loaders.pipeline``): each ends after its batch, in order. A second
    raises KeyboardInterrupt, for a person who will not wait. Python's
    defaults would not do: KeyboardInterrupt lands wherever the main thread
    is, maybe in the parse pool's own bookkeeping (a pool cut there can hang
    as it closes), and SIGTERM ends the process at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        #: The signal that asked to stop, once one did.
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
            }

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> _Stopping:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()

    @property
    def by(self) -> str:
        """Who asked to stop, for a report: ``by SIGTERM``."""
        assert self.signum is not None
        name = signal.Signals(self.signum).name
        return f"by {name} (Ctrl-C)" if self.signum == signal.SIGINT else f"by {name}"


def _end_by(signum: int) -> NoReturn:
    """End the process by ``signum``, as its default action would have, once
    what it was doing is stopped in order (the output flushed first: dying by
    a signal does not)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    sys.exit(128 + signum)  # not reached, unless the signal is blocked


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsgraph")
def cli() -> None:
    """Load news-article files into MongoDB and serve them over GraphQL.

    The store is MongoDB when MONGODB_URI is set, else the embedded engine,
    whose data lives in NEWSGRAPH_DATA_DIR (default ~/.local/share/newsgraph).
    """


@cli.command(epilog=_epilog("load"))
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path),
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as JSON on stdout instead of a summary.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Documents per bulk write [default: NEWSGRAPH_BATCH_SIZE or 500].",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete stored articles whose source file under PATHS is gone.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Load, then keep the store in step with PATHS as files arrive, change or "
    "disappear, until interrupted (implies --prune).",
)
def load(
    paths: tuple[Path, ...], as_json: bool, batch_size: int | None, prune: bool, watch: bool
) -> None:
    """Load article files (and directories of them, recursively) into the store.

    Each article is upserted by its webUrl; files whose content is already
    stored are skipped. Every file that failed or was skipped is listed with
    its reason (a FIFO, socket or device is never opened; a file that vanished
    or kept changing is left for the next load). In a directory, files ending
    .md, .markdown or .txt are read; a directory named that holds none is
    reported.
    """
    from loaders import load_paths
    from loaders.pipeline import stopped
    from loaders.report import render

    settings = _settings()
    if batch_size:
        settings = Settings(**{**settings.__dict__, "batch_size": batch_size})
    err = _console(stderr=True)
    store = _reach(settings, err)
    if store.embedded:
        err.print(f"MONGODB_URI is not set: loading into {store.where}", highlight=False)
    with _Stopping() as stopping:
        found = _count_files(paths, err)
        empty = _warn_empty(found, err)
        if watch:
            _watch(store, paths, settings, as_json, err, stopping.event)
            if stopping.signum == signal.SIGTERM:
                store.close()
                _end_by(stopping.signum)
            return
        total = sum(found.values())
        report = _load_with_progress(
            load_paths, store, paths, settings, err, total, prune, stopping.event
        )
    if stopping.signum is not None and report.aborted == stopped():
        report.aborted = stopped(stopping.by)
    if as_json:
        from loaders.paths import path_text

        data = {**report.to_dict(), "empty": [path_text(path) for path in empty]}
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        sys.stdout.write("\n")
    else:
        render(report, _console())
    if stopping.signum is not None:
        store.close()
        _end_by(stopping.signum)
    if report.aborted:
        sys.exit(EXIT_STORE)
    sys.exit(EXIT_OK if report.ok and not empty else EXIT_FAILED)


def _count_files(paths: Sequence[Path], err: Console) -> dict[Path, int]:
    """How many files the load will read under each path, found as the load
    finds them, for the progress bar's total: a walk of the directories, under
    1% of a first load's time at 10,000 files, though a tenth of an unchanged
    reload's (see the README). So it is done only where the bar shows; a pipe
    or a file gets 0 or 1 for each path, enough to tell an empty directory."""
    from loaders.discover import discover

    def count(path: Path) -> int:
        if not path.is_dir():
            return 1
        found = discover([path])
        if err.is_terminal:
            return sum(1 for _ in found)
        return 1 if next(found, None) is not None else 0

    return {path: count(path) for path in paths}


def _warn_empty(found: dict[Path, int], err: Console) -> list[Path]:
    """Warn of each directory that holds no article file, saying which files
    are read and what it holds instead; those directories."""
    from loaders.discover import ARTICLE_SUFFIXES
    from loaders.paths import path_text

    empty = [path for path, count in found.items() if count == 0]
    *suffixes, last = sorted(ARTICLE_SUFFIXES)
    read = f"{', '.join(suffixes)} or {last}"
    for directory in empty:
        others, example = _other_files(directory)
        holds = (
            f"it holds {others:,} file{'s' if others != 1 else ''} that "
            f"{'are' if others != 1 else 'is'} not read, e.g. {path_text(example)}"
            if example is not None
            else "it holds no files"
        )
        err.print("[yellow]warning:[/] ", end="", highlight=False)
        err.print(
            f"no article files in {path_text(directory)}: in a directory, only files "
            f"ending {read} are read (hidden ones are not); {holds}",
            highlight=False,
            markup=False,
        )
    return empty


def _other_files(directory: Path) -> tuple[int, Path | None]:
    """How many files are under ``directory`` (none of them an article file),
    and the first by name, relative to it (a hidden one only if all are)."""
    count, first = 0, None

    def order(path: Path) -> tuple[bool, str]:
        return any(part.startswith(".") for part in path.parts), str(path)

    for root, _dirs, files in os.walk(directory):
        for name in files:
            count += 1
            path = Path(root, name).relative_to(directory)
            first = path if first is None or order(path) < order(first) else first
    return count, first


def _watch(
    store: Store,
    paths: tuple[Path, ...],
    settings: Settings,
    as_json: bool,
    err: Console,
    stop: threading.Event,
) -> None:
    """``load --watch``: one report per batch of changes, until Ctrl-C or
    SIGTERM (``stop``)."""
    from loaders.paths import path_text
    from loaders.report import render
    from loaders.watch import watch_paths

    out = _console()

    def on_report(report: LoadReport) -> None:
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(report.to_dict()) + b"\n")
            sys.stdout.flush()
        else:
            render(report, out)

    watched = ", ".join(map(path_text, paths))
    err.print(f"watching {watched} (Ctrl-C to stop)", highlight=False, markup=False)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: at once, not in order
        watch_paths(store, paths, settings, on_report=on_report, stop=stop)
    err.print("stopped watching", highlight=False)


def _load_with_progress(
    load_paths: Callable[..., LoadReport],
    store: Store,
    paths: Sequence[Path],
    settings: Settings,
    err: Console,
    total: int,
    prune: bool = False,
    stop: threading.Event | None = None,
) -> LoadReport:
    """A progress bar with the files counted ahead as its total, and the time
    left, on a terminal; silent when stderr is a pipe or a file. ``stop`` ends
    the load early (Ctrl-C or SIGTERM)."""
    if not err.is_terminal:
        return load_paths(store, paths, settings, prune=prune, stop=stop)
    columns = (
        SpinnerColumn(),
        TextColumn("loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files  {task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("load", total=total, rate="")

        def on_file(_path: Path) -> None:
            progress.advance(task)
            (state,) = progress.tasks
            if state.total is not None and state.completed > state.total:
                progress.update(task, total=state.completed)  # files that arrived since
            if state.speed:
                progress.update(task, rate=f"{state.speed:,.0f}/s")

        return load_paths(store, paths, settings, on_file=on_file, prune=prune, stop=stop)


@cli.command(epilog=_epilog("serve"))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed).",
)
@click.option(
    "--load",
    "load_paths_",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Load these files or directories (repeatable): before serving into an empty "
    "store, beside serving into one that holds articles (a restart serves at once); the "
    "way to fill the embedded engine.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="With --load: keep loading those paths' changes while serving, as "
    "`load --watch` does (the embedded engine's way to get news to subscribers).",
)
@click.option(
    "--memory",
    is_flag=True,
    help="Without MONGODB_URI: keep the embedded engine's data only while serving "
    "(a throwaway run, with --load).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    help="Also answer /healthz and /readyz on this port, from a process of their own, "
    "so that a busy server still answers its probes (0: any free port, printed).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes serving the port (Uvicorn's supervisor restarts one that dies); "
    "more than one needs a store they can share (MONGODB_URI, or the embedded engine's "
    "files), so not --memory or --watch.",
)
def serve(
    host: str,
    port: int,
    load_paths_: tuple[Path, ...],
    watch: bool,
    memory: bool,
    log_level: str,
    health_port: int | None,
    workers: int,
) -> None:
    """Serve the GraphQL API at /graphql (GraphiQL in a browser) and /healthz.

    The port is taken first, before anything is loaded: a port in use fails
    at once. Into an empty store, --load loads before serving (requests that
    arrive meanwhile wait for it to end); into one that holds articles (a
    restart), the server serves them at once and --load runs beside it.
    """
    import uvicorn

    from api.app import create_app
    from api.http.beats import Beats
    from api.http.connections import GuardedServer, limits_for, server_options
    from api.http.health import LoadBoard, ProbeProcess
    from api.telemetry.logs import log_config
    from loaders import load_paths
    from loaders.pipeline import stopped
    from loaders.progress import LoadProgress
    from loaders.report import render

    settings = _settings()
    if memory:
        settings = dataclasses.replace(settings, memory=True)
    if watch and not load_paths_:
        raise click.UsageError("--watch follows the --load paths: give at least one")
    if workers > 1 and (memory or watch):
        raise click.UsageError(
            "--workers serves one store from several processes: not a --memory one, "
            "and --watch loads in one process only (run `newsgraph load --watch` beside it)"
        )
    _check_serving_settings(settings)
    err = _console(stderr=True)
    # Uvicorn serves on this very socket: nothing can take the port between
    # this check and serving.
    listening = _listen(host, port, err)
    probes = None
    # Each worker's heartbeat, which the supervisor watches (and /healthz reports).
    beats = Beats.create(workers) if workers > 1 else None
    # How a load beside serving goes, for the processes that answer /readyz
    # and do not load: the workers (the supervisor loads) and the probe process.
    board = (
        LoadBoard.create()
        if load_paths_ and not watch and (workers > 1 or health_port is not None)
        else None
    )
    if health_port is not None:
        # Answered from here on, by a process of their own (alive, not ready
        # while --load runs); it holds the socket now.
        with _listen(host, health_port, err) as probing:
            probes = ProbeProcess(probing, beats, board)
    stopping = _Stopping()
    stop = stopping.event
    beside: threading.Thread | None = None
    progress: LoadProgress | None = None
    try:
        stopping.install()
        store = connect(settings)
        loaded = False  # whether --load ran before serving
        if load_paths_:
            store = _reach(settings, err)
            found = _count_files(load_paths_, err)
            _warn_empty(found, err)
            if _holds_articles(store):
                # A restart: what the store holds is served at once, and the
                # files' changes are loaded beside (reported when done).
                err.print(
                    "the store holds articles already: serving them now, loading the changes "
                    "beside",
                    highlight=False,
                    markup=False,
                )
            else:  # a first load: the first requests see its articles
                report = _load_with_progress(
                    load_paths, store, load_paths_, settings, err, sum(found.values()), stop=stop
                )
                if stopping.signum is not None:  # stopped before serving: say so, and stop
                    if report.aborted == stopped():
                        report.aborted = stopped(stopping.by)
                    render(report, err)
                    return
                render(report, err)
                loaded = True
        elif store.embedded and store.articles.find_one({}, {"_id": 1}) is None:
            err.print(
                f"[yellow]note:[/] {store.where} holds no articles yet; run `newsgraph load "
                "PATH` (or pass --load PATH), or set MONGODB_URI to serve a MongoDB database.",
                highlight=False,
            )
        if watch:
            # Beside the server, in this process; its first load is the one
            # --load put off, if it did.
            threading.Thread(
                target=_follow,
                args=(store, load_paths_, settings, err, stop, loaded),
                daemon=True,
            ).start()
        elif load_paths_ and not loaded:
            # In a thread of this process (the supervisor's, with --workers:
            # once, not per worker); the loader's store calls leave the event
            # loop alone, as the gateway's threads do. /readyz shows how it goes.
            progress = LoadProgress(publish=board.write if board is not None else None)
            beside = threading.Thread(
                target=_load_beside,
                args=(store, load_paths_, settings, err, stop, progress),
                name="newsgraph-load",
                daemon=True,
            )
            beside.start()
        port = listening.getsockname()[1]
        address = f"[{host}]" if ":" in host else host
        err.print(
            f"GraphQL at http://{address}:{port}/graphql  (store: {store.where})",
            highlight=False,
            markup=False,
        )
        options: dict[str, Any] = dict(
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config(log_level),
            access_log=False,  # newsgraph.access logs each request, with its timing
            # A WebSocket message over the limit is refused before it is buffered
            # whole (the app refuses it too, under any server).
            ws_max_size=settings.max_body_bytes,
            # Header, idle and send timeouts, and a bound on connections.
            **server_options(limits_for(settings)),
            # Who the client is behind a proxy is the app's to decide, from
            # NEWSGRAPH_TRUSTED_PROXIES (api/http/identity.py): Uvicorn would
            # otherwise believe X-Forwarded-For from any local connection.
            proxy_headers=False,
        )
        if probes:
            err.print(
                f"Probes at http://{address}:{probes.port}/healthz and /readyz",
                highlight=False,
                markup=False,
            )
        if stop.is_set():  # stopped while starting: not to serve now
            return
        if workers > 1:
            if beside is None:
                store.close()  # each worker opens its own
            assert beats is not None
            _supervise(settings, options, beats, listening, probes, err, board)
            return
        app = create_app(settings, store)
        if progress is not None:
            app.state.health.load = progress.snapshot
        if probes:
            app.state.health.record = probes.record
        config = uvicorn.Config(app, **options)
        server = GuardedServer(config, _BACKLOG)
        server.should_exit = stop.is_set()  # stopped while the app was made
        try:
            server.run(sockets=[listening])
        except KeyboardInterrupt:
            pass  # Uvicorn stopped gracefully, then passed Ctrl-C on (as uvicorn.run, exit 0)
        except SystemExit as exc:
            # Uvicorn exits 3 when the app fails to start, the code this
            # command gives an unreachable store; the log has said why.
            if exc.code == UVICORN_STARTUP_FAILURE:
                sys.exit(EXIT_FAILED)
            raise
        if not server.started:
            sys.exit(EXIT_FAILED)
    finally:
        stop.set()
        listening.close()
        if probes:
            probes.stop()
        if beats is not None:
            beats.close()
        if beside is not None:
            # It stops after its batch (``stop``), closing its parse pool and
            # letting the lease go, and reports what it did.
            beside.join(_LOAD_STOP_S)
            if beside.is_alive():
                err.print(
                    "[yellow]note:[/] stopped before the load beside serving ended: what it "
                    "wrote stays; `newsgraph load` (or the next `serve --load`) finishes it",
                    highlight=False,
                )
        if board is not None:
            board.close()
        stopping.restore()
        if stopping.signum == signal.SIGTERM:
            _end_by(signal.SIGTERM)


#: How long a stopping ``serve`` waits for its load beside serving to stop
#: after its batch (seconds); its parse workers end with the process anyway.
_LOAD_STOP_S = 5.0


def _holds_articles(store: Store) -> bool:
    """Whether ``store`` holds an article (published or not)."""
    return store.articles.find_one({}, {"_id": 1}) is not None


def _load_beside(
    store: Store,
    paths: tuple[Path, ...],
    settings: Settings,
    err: Console,
    stop: threading.Event,
    progress: LoadProgress,
) -> None:
    """``serve --load`` over a store that holds articles: the load, run
    beside serving, its report on stderr when it ends (no progress bar: the
    server's log shares stderr) and its progress in ``progress``. ``stop``
    ends a wait for the loader lease."""
    from loaders.discover import discover
    from loaders.pipeline import Loader, stopped
    from loaders.report import render

    try:
        # The total /readyz shows: a walk of the folders, ~1% of a first load.
        progress.files_total = sum(1 for _ in discover(paths))
        with Loader(store, settings, stop=stop, progress=progress) as loader:
            report = loader.load(paths)
    except Exception as exc:  # the server serves on; say why the load did not end
        if not stop.is_set():  # stopping: the note on stopping says it did not end
            _error(err, f"the load beside serving failed: {exc!r}")
        return
    if report.aborted == stopped():
        report.aborted = stopped("with the server")
    render(report, err)


class _Worker:
    """What each ``serve --workers`` process runs (pickled to it: it is
    spawned, so it shares no threads or store clients with the supervisor):
    the app built from the settings, served on the socket the supervisor
    bound, exactly as one process serves it. The connection guard's protocol
    class is made per server, so here, not pickled."""

    def __init__(
        self,
        settings: Settings,
        options: dict[str, Any],
        sock: socket.socket,
        record: Any,
        beat: Beater,
        load: LoadBoard | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.sock = sock
        self.record = record
        self.beat = beat
        self.load = load

    def __call__(self) -> None:
        import uvicorn

        from api.app import create_app
        from api.http.connections import GuardedServer, limits_for, server_options

        app = create_app(self.settings)
        if self.record is not None:
            app.state.health.record = self.record
        app.state.health.on_beat = self.beat
        if self.load is not None:  # the supervisor's load beside serving
            app.state.health.load = self.load.read
        config = uvicorn.Config(app, **self.options, **server_options(limits_for(self.settings)))
        config.configure_logging()
        server = GuardedServer(config, _BACKLOG)
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[self.sock])
        if not server.started:  # the app failed to start: starting it again would too
            sys.exit(UVICORN_STARTUP_FAILURE)


#: How often the supervisor of ``serve --workers`` looks for a worker that
#: died or went silent (seconds).
_SUPERVISE_S = 0.5
#: How long a silent worker is given to end after SIGTERM before SIGKILL (seconds).
_KILL_GRACE_S = 5.0


def _supervise(
    settings: Settings,
    options: dict[str, Any],
    beats: Beats,
    listening: socket.socket,
    probes: ProbeProcess | None,
    err: Console,
    board: LoadBoard | None = None,
) -> None:
    """``serve --workers N``: N :class:`_Worker` processes accepting on
    ``listening``, each in a slot of ``beats`` its event loop beats in (and
    reading ``board`` for /readyz's load part, when this process loads). One
    that dies is started again; one silent for NEWSGRAPH_WORKER_TIMEOUT_S is
    sent SIGTERM, SIGKILL :data:`_KILL_GRACE_S` later (a stuck loop never
    handles the first), and replaced once it is gone, as gunicorn's arbiter
    does. SIGTERM or Ctrl-C stops them all, each gracefully as one server stops
    (then killed after 10 s).

    Uvicorn's own supervisor would make each worker's server from an import
    string, without the connection guard's server; this one is as small."""
    import multiprocessing
    import time

    spawn = multiprocessing.get_context("spawn")
    # What server_options gives is made again in each worker (its classes are
    # made per server, and are not pickled).
    guarded = ("http", "ws", "timeout_keep_alive", "backlog")
    plain = {k: v for k, v in options.items() if k not in guarded}
    record = probes.shared() if probes else None
    timeout = settings.worker_timeout_s
    stopping = threading.Event()
    failed = False
    caught: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: dict[int, Any] = {}  # slot -> its worker process
    killing: dict[int, float] = {}  # slot -> when its silent worker was sent SIGTERM
    try:
        while not stopping.is_set():
            now_ns = time.monotonic_ns()
            for slot in beats.slots():
                process = running.get(slot.index)
                if process is None or not process.is_alive():
                    continue
                silent = slot.silent_s(now_ns, timeout)
                if slot.index in killing:
                    if now_ns / 1e9 - killing[slot.index] > _KILL_GRACE_S:
                        _error(err, f"worker {process.pid} did not stop: killing it (SIGKILL)")
                        process.kill()
                        killing[slot.index] = float("inf")  # once
                elif silent is not None and silent > 0:
                    since = (now_ns - (slot.beat_ns or slot.started_ns)) / 1e9
                    what = "its last heartbeat" if slot.beat_ns else "it started, with none yet"
                    _error(
                        err,
                        f"worker {process.pid}: {since:.1f} s since {what} "
                        f"(NEWSGRAPH_WORKER_TIMEOUT_S={timeout}): its event loop is stuck; "
                        "stopping it, then starting another",
                    )
                    killing[slot.index] = now_ns / 1e9
                    process.terminate()
            for index in range(beats.size):
                process = running.get(index)
                if process is not None and process.is_alive():
                    continue
                if process is not None:
                    process.join()
                    if process.exitcode == UVICORN_STARTUP_FAILURE:
                        # Its log said why; the others would fail alike (exit 1,
                        # as one server).
                        stopping.set()
                        failed = True
                killing.pop(index, None)
                if stopping.is_set():
                    break
                process = spawn.Process(
                    target=_Worker(settings, plain, listening, record, beats.beater(index), board),
                    name="newsgraph-worker",
                )
                process.start()
                assert process.pid is not None  # started
                beats.started(index, process.pid, time.monotonic_ns())
                running[index] = process
            stopping.wait(_SUPERVISE_S)
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        sys.exit(EXIT_FAILED)
    if caught:  # on to the handler before (serve's), as Uvicorn passes on what it caught
        signal.raise_signal(caught[0])


def _check_serving_settings(settings: Settings) -> None:
    """The settings only the API reads, checked before anything is loaded or
    served: a usage error (exit 2) saying what is wrong."""
    from api.http.identity import trusted_networks
    from api.operation.trusted import TrustedDocuments

    try:
        trusted_networks(settings.trusted_proxies)
        TrustedDocuments.for_settings(settings)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


#: ``uvicorn.server.STARTUP_FAILURE``.
UVICORN_STARTUP_FAILURE = 3
#: Uvicorn's default for ``Config.backlog``.
_BACKLOG = 2048


def _listen(host: str, port: int, err: Console) -> socket.socket:
    """A socket bound to ``host:port`` and listening; or exit 4 saying why.

    Bound as Uvicorn binds for its workers (IPv6 when the host has a colon;
    SO_REUSEADDR, so that a port whose last connections linger in TIME_WAIT
    can be taken again), and listening at once, which is what keeps another
    server from binding the port while this one loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        _error(err, f"cannot listen on {where}: {_why_not(exc)}")
        sys.exit(EXIT_LISTEN)
    return sock


def _why_not(exc: OSError) -> str:
    """Why a socket could not be bound, with what to do about it."""
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (is a server already running there?); choose another --port"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose another --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address; check --host"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror}); check --host"
    return exc.strerror or str(exc)


def _follow(
    store: Store,
    paths: tuple[Path, ...],
    settings: Settings,
    err: Console,
    stop: threading.Event,
    loaded: bool,
) -> None:
    """``serve --watch``: the folders' changes loaded as they come, each
    batch's report on stderr (the first load's too, unless ``loaded``: the
    same paths were loaded and reported before serving)."""
    from loaders.report import render
    from loaders.watch import watch_paths

    reports = 0

    def on_report(report: LoadReport) -> None:
        nonlocal reports
        reports += 1
        if reports > 1 or not loaded:
            render(report, err)

    watch_paths(store, paths, settings, on_report=on_report, stop=stop)


@cli.command(epilog=_epilog("facets"))
@click.option(
    "--rebuild",
    is_flag=True,
    help="Replace the provider and topic rows that differ with the recounted ones.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON on stdout.")
def facets(rebuild: bool, as_json: bool) -> None:
    """Check the provider and topic counts against the stored articles.

    Counts them again from every stored article, under the loader lease (so
    no load writes meanwhile), and lists each row that differs from what is
    stored; --rebuild replaces those rows.
    """
    from loaders.facets import RecountStopped, recount_facets
    from loaders.lease import LeaseError

    settings = _settings()
    err = _console(stderr=True)
    store = _reach_noting(settings, err)
    # SIGTERM's default would end the process holding the lease (the next
    # load would wait out its expiry): stopped, the recount lets it go first.
    with _Stopping() as stopping:
        try:
            recount = recount_facets(store, settings, rebuild=rebuild, stop=stopping.event)
        except (StoreUnavailable, LeaseError, RecountStopped) as exc:
            if stopping.signum is None:
                _error(err, str(exc))
                sys.exit(EXIT_STORE)
            err.print(
                f"stopped {stopping.by}, before the end: no row was replaced.", highlight=False
            )
            store.close()
            _end_by(stopping.signum)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(_recount_dict(recount), option=orjson.OPT_INDENT_2))
        sys.stdout.write("\n")
    else:
        _render_recount(recount, _console())
    sys.exit(EXIT_FAILED if recount.changes and not recount.rebuilt else EXIT_OK)


def _recount_dict(recount: Recount) -> dict[str, Any]:
    return {
        "store": recount.store,
        "articles": recount.articles,
        "rows": recount.rows,
        "changes": [
            {"collection": c.collection, "key": c.key, "stored": c.stored, "counted": c.counted}
            for c in recount.changes
        ],
        "rebuilt": recount.rebuilt,
    }


def _render_recount(recount: Recount, out: Console) -> None:
    """One line for what was counted, one per row that differs, one verdict."""
    from loaders.paths import printable

    rows = ", ".join(f"{count:,} {collection}" for collection, count in recount.rows.items())
    out.print(
        f"Counted {recount.articles:,} articles in {recount.store}: {rows}",
        highlight=False,
        markup=False,
    )
    for change in recount.changes:
        # printable: a topic is a file's text, and may hold a newline.
        out.print(printable(_change_text(change)), highlight=False, markup=False)
    differ = len(recount.changes)
    if not differ:
        out.print("The counts are right.", highlight=False)
    elif recount.rebuilt:
        out.print(f"{differ:,} rows differed; replaced with the recounted ones.", highlight=False)
    else:
        out.print(
            f"{differ:,} rows differ; `newsgraph facets --rebuild` replaces them.",
            highlight=False,
        )


def _change_text(change: FacetChange) -> str:
    """``collection key: field stored -> counted, ...``."""
    where = f"{change.collection} {change.key!r}"
    if change.stored is None:
        return f"{where}: missing; counted {_fields(change.counted or {})}"
    if change.counted is None:
        return f"{where}: stored ({_fields(change.stored)}) but no article counts it"
    fields = sorted(change.stored.keys() | change.counted.keys())
    moved = [
        f"{field} {change.stored.get(field)!r} -> {change.counted.get(field)!r}"
        for field in fields
        if change.stored.get(field) != change.counted.get(field)
    ]
    return f"{where}: " + ", ".join(moved)


def _fields(row: dict[str, Any]) -> str:
    return ", ".join(f"{field} {value!r}" for field, value in sorted(row.items()))


@cli.group(epilog=_epilog("keys"))
def keys() -> None:
    """Create, list and revoke API keys.

    A request that sends a key (Authorization: Bearer <key>) spends the key's
    budget rather than its address's (NEWSGRAPH_KEY_*). The store keeps only
    each key's SHA-256: the key itself is shown once, when it is created.
    """


def _keys_store(err: Console) -> Store:
    store = _reach_noting(_settings(), err)
    # Keys are looked up and revoked by their indexes: made here too, as the
    # API and the loader make theirs, so that a fresh store has them.
    store.ensure_indexes()
    return store


def _key_dict(key: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "created": key.created.isoformat(),
        "revoked": key.revoked.isoformat() if key.revoked else None,
    }


@keys.command("create", epilog=_epilog("keys"))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
def keys_create(name: str, as_json: bool) -> None:
    """Create a key named NAME (a label for people) and print it, once."""
    from core import keys as api_keys

    err = _console(stderr=True)
    store = _keys_store(err)
    try:
        token, key = _storing(store, lambda: api_keys.create(store.keys, name))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        sys.stdout.buffer.write(orjson.dumps({**_key_dict(key), "key": token}) + b"\n")
        return
    click.echo(token)
    err.print(
        f"created key {key.id} ({name}); it is shown only now: keep it secret",
        highlight=False,
        markup=False,
    )


@keys.command("list", epilog=_epilog("keys"))
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def keys_list(as_json: bool) -> None:
    """List the keys: id, name, when created, and when revoked."""
    from core import keys as api_keys

    err = _console(stderr=True)
    store = _keys_store(err)
    found = _storing(store, lambda: api_keys.listed(store.keys))
    if as_json:
        sys.stdout.buffer.write(orjson.dumps([_key_dict(k) for k in found]) + b"\n")
        return
    out = _console()
    for key in found:
        state = f"revoked {key.revoked.isoformat()}" if key.revoked else "live"
        out.print(
            f"{key.id}  {key.created.isoformat()}  {state}  {key.name}",
            highlight=False,
            markup=False,
        )
    if not found:
        err.print("no keys", highlight=False)


@keys.command("revoke", epilog=_epilog("keys"))
@click.argument("key_id", metavar="ID")
def keys_revoke(key_id: str) -> None:
    """Revoke the key with this ID: within 10 s no worker honours it."""
    from core import keys as api_keys

    err = _console(stderr=True)
    store = _keys_store(err)
    key = _storing(store, lambda: api_keys.revoke(store.keys, key_id))
    if key is None:
        _error(err, f"no live key has the id {key_id!r} (see `newsgraph keys list`)")
        sys.exit(EXIT_FAILED)
    err.print(f"revoked key {key.id} ({key.name})", highlight=False, markup=False)


def _storing(store: Store, operation: Callable[[], Any]) -> Any:
    """``operation`` on the store; exit 3 if the store stops answering."""
    from core.store import unavailable_as_error

    try:
        with unavailable_as_error(store.where):
            return operation()
    except StoreUnavailable as exc:
        _error(_console(stderr=True), str(exc))
        sys.exit(EXIT_STORE)


@cli.command()
def schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from api.operation.schema import sdl

    click.echo(sdl(), nl=False)


@cli.command()
@click.argument("query", required=False)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the query from this file instead.",
)
@click.option("--variables", default="{}", help="The query's variables, as a JSON object.")
def explain(query: str | None, file_: Path | None, variables: str) -> None:
    """Print the store calls and the shaping a query compiles to (no store is asked)."""
    from api.execution.plan.explain import explain as explained
    from api.operation.schema import build_schema

    if (query is None) == (file_ is None):
        raise click.UsageError("give a QUERY or --file (one of the two)")
    text = file_.read_text() if file_ is not None else query or ""
    try:
        values = orjson.loads(variables)
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"--variables is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise click.UsageError("--variables must be a JSON object")
    click.echo(explained(build_schema(_settings()), text, values))


def main() -> None:
    cli()
