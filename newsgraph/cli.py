"""The ``newsgraph`` command: a thin layer over the Python API.

Each command is a few lines that call ``loaders``, ``api`` or ``core.store``;
a library user can call the same functions.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from core.config import ConfigError, Settings
from core.store import Store, StoreUnavailable, connect
from newsgraph import __version__

if TYPE_CHECKING:  # loaders is imported when a command needs it, not at start
    from loaders.report import LoadReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _open_store(settings: Settings) -> Store:
    store = connect(settings)
    store.ping()
    return store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsgraph")
def cli() -> None:
    """Load news-article files into MongoDB and serve them over GraphQL.

    The store is MongoDB when MONGODB_URI is set, else the embedded engine,
    whose data lives in NEWSGRAPH_DATA_DIR (default ~/.local/share/newsgraph).
    """


@cli.command()
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
    stored are skipped. Exit status: 0 all loaded, 1 any file failed or was
    skipped (each is listed with its reason: a FIFO, socket or device is never
    opened; a file that vanished or kept changing is left for the next load),
    2 usage error, 3 the store could not be reached.
    """
    from loaders import load_paths
    from loaders.report import render

    settings = _settings()
    if batch_size:
        settings = Settings(**{**settings.__dict__, "batch_size": batch_size})
    err = Console(stderr=True)
    try:
        store = _open_store(settings)
    except StoreUnavailable as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_STORE)
    if store.embedded:
        err.print(f"MONGODB_URI is not set: loading into {store.where}", highlight=False)
    if watch:
        _watch(store, paths, settings, as_json, err)
        return
    report = _load_with_progress(load_paths, store, paths, settings, err, prune)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
        sys.stdout.write("\n")
    else:
        render(report, Console())
    if report.aborted:
        sys.exit(EXIT_STORE)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


def _watch(
    store: Store, paths: tuple[Path, ...], settings: Settings, as_json: bool, err: Console
) -> None:
    """``load --watch``: one report per batch of changes, until Ctrl-C."""
    from loaders.paths import path_text
    from loaders.report import render
    from loaders.watch import watch_paths

    out = Console()

    def on_report(report: LoadReport) -> None:
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(report.to_dict()) + b"\n")
            sys.stdout.flush()
        else:
            render(report, out)

    watched = ", ".join(map(path_text, paths))
    err.print(f"watching {watched} (Ctrl-C to stop)", highlight=False, markup=False)
    try:
        watch_paths(store, paths, settings, on_report=on_report)
    except KeyboardInterrupt:
        err.print("stopped watching", highlight=False)


def _load_with_progress(
    load_paths: Callable[..., LoadReport],
    store: Store,
    paths: Sequence[Path],
    settings: Settings,
    err: Console,
    prune: bool = False,
) -> LoadReport:
    """A progress bar on a terminal; silent when stderr is a pipe or a file."""
    if not err.is_terminal:
        return load_paths(store, paths, settings, prune=prune)
    columns = (
        SpinnerColumn(),
        TextColumn("loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files  {task.fields[rate]}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("load", total=None, rate="")

        def on_file(_path: Path) -> None:
            progress.advance(task)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f}/s")

        return load_paths(store, paths, settings, on_file=on_file, prune=prune)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on.",
)
@click.option(
    "--load",
    "load_paths_",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Load these files or directories before serving (repeatable); the way to "
    "fill the embedded engine.",
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
def serve(
    host: str,
    port: int,
    load_paths_: tuple[Path, ...],
    watch: bool,
    memory: bool,
    log_level: str,
) -> None:
    """Serve the GraphQL API at /graphql (GraphiQL in a browser) and /healthz."""
    import uvicorn

    from api.app import create_app
    from api.observe import log_config
    from loaders import load_paths
    from loaders.report import render

    settings = _settings()
    if memory:
        settings = dataclasses.replace(settings, memory=True)
    err = Console(stderr=True)
    store = connect(settings)
    if load_paths_:
        try:
            store.ping()
        except StoreUnavailable as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            sys.exit(EXIT_STORE)
        report = _load_with_progress(load_paths, store, load_paths_, settings, err)
        render(report, err)
    elif store.embedded and store.articles.find_one({}, {"_id": 1}) is None:
        err.print(
            f"[yellow]note:[/] {store.where} holds no articles yet; run `newsgraph load "
            "PATH` (or pass --load PATH), or set MONGODB_URI to serve a MongoDB database.",
            highlight=False,
        )
    if watch and not load_paths_:
        raise click.UsageError("--watch follows the --load paths: give at least one")
    stop = threading.Event()
    if watch:
        # Beside the server, in this process.
        threading.Thread(
            target=_follow, args=(store, load_paths_, settings, err, stop), daemon=True
        ).start()
    err.print(f"GraphQL at http://{host}:{port}/graphql  (store: {store.where})", highlight=False)
    try:
        uvicorn.run(
            create_app(settings, store),
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config(log_level),
            access_log=False,  # newsgraph.access logs each request, with its timing
            # A WebSocket message over the limit is refused before it is buffered
            # whole (the app refuses it too, under any server).
            ws_max_size=settings.max_body_bytes,
        )
    finally:
        stop.set()


def _follow(
    store: Store, paths: tuple[Path, ...], settings: Settings, err: Console, stop: threading.Event
) -> None:
    """``serve --watch``: the folders' changes loaded as they come, each
    batch's report on stderr (the first load was reported already)."""
    from loaders.report import render
    from loaders.watch import watch_paths

    reports = 0

    def on_report(report: LoadReport) -> None:
        nonlocal reports
        reports += 1
        if reports > 1:
            render(report, err)

    watch_paths(store, paths, settings, on_report=on_report, stop=stop)


@cli.command()
def schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from api.schema import sdl

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
    from api.plan.explain import explain as explained
    from api.schema import build_schema

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
