"""Headless Chromium for the browser tests: Debian's ``chromium`` package driven
by Playwright (Playwright's own browser download is not used).

Missing, the tests are skipped saying why; with ``NEWSGRAPH_REQUIRE_BROWSER=1``
(CI) they fail instead (see ``tests.required``).
"""

from __future__ import annotations

import os
import shutil

from tests.required import missing

LAUNCH_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str:
    """The Chromium executable, or a skip (a failure in CI) saying what is missing."""
    path = os.environ.get("NEWSGRAPH_CHROMIUM") or shutil.which("chromium")
    if not path:
        missing(
            "BROWSER", "no Chromium: install Debian's chromium package (apt-get install chromium)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("BROWSER", "Playwright is not installed: run scripts/install")
    return path


def require_local_graphiql() -> None:
    from api.http.explorer import Explorer

    if not Explorer().local:
        missing(
            "BROWSER", "GraphiQL's npm packages are not installed: run scripts/install (needs npm)"
        )
