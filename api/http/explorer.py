"""GraphiQL served by newsgraph itself, so the explorer works on a closed network.

``scripts/install`` installs GraphiQL, its Explorer plugin (build a query by
clicking fields) and React from the npm registry into
``api/http/graphiql/node_modules`` (nothing third-party is committed); this module
serves the few files the page needs from there at ``/graphiql/<name>``. When
they are absent (npm was not available at set-up) the page falls back to
strawberry's, which loads the same libraries from a CDN.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

#: Where scripts/install puts the packages of api/http/graphiql/package.json.
DEFAULT_NODE_MODULES = Path(__file__).parent / "graphiql" / "node_modules"

#: The files the page loads, by the name it loads them under.
ASSETS = {
    "react.js": "react/umd/react.production.min.js",
    "react-dom.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.js": "graphiql/graphiql.min.js",
    "graphiql.css": "graphiql/graphiql.min.css",
    # The Explorer plugin's browser build: it defines GraphiQLPluginExplorer and
    # takes React and GraphQL from the globals graphiql.js sets, so it loads after it.
    "plugin-explorer.js": "@graphiql/plugin-explorer/dist/index.umd.js",
    "plugin-explorer.css": "@graphiql/plugin-explorer/dist/style.css",
}

DEFAULT_QUERY = """\
# The 5 newest articles. Ctrl-Enter runs the query; the docs (top left) list
# every type and field, and the Explorer (the folder icon) builds a query as
# you tick fields.
{
  articles(first: 5) {
    totalCount
    nodes { id title publishedDateTime provider { name } topics { name } }
  }
}
"""

# Relative asset URLs, so the page also works behind a proxy that mounts the
# API under a prefix.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>newsgraph · GraphiQL</title>
  <link rel="stylesheet" href="graphiql/graphiql.css">
  <link rel="stylesheet" href="graphiql/plugin-explorer.css">
  <style>html, body, #explorer { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="explorer">Loading the explorer…</div>
  <script src="graphiql/react.js"></script>
  <script src="graphiql/react-dom.js"></script>
  <script src="graphiql/graphiql.js"></script>
  <script src="graphiql/plugin-explorer.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
    ReactDOM.createRoot(document.getElementById("explorer")).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery: DEFAULT_QUERY,
        shouldPersistHeaders: false,
        plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      })
    );
  </script>
</body>
</html>
"""


class Explorer:
    def __init__(self, node_modules: Path | None = None) -> None:
        root = node_modules or DEFAULT_NODE_MODULES
        self.files = {name: root / relative for name, relative in ASSETS.items()}
        #: Whether every asset is installed; otherwise the CDN page is used.
        self.local = all(path.is_file() for path in self.files.values())
        self.page = PAGE.replace("DEFAULT_QUERY", json.dumps(DEFAULT_QUERY))

    def render(self) -> Response:
        return HTMLResponse(self.page, headers={"Cache-Control": "no-cache"})

    async def asset(self, request: Request) -> Response:
        path = self.files.get(request.path_params["name"])
        if path is None or not path.is_file():
            return PlainTextResponse("Not Found", status_code=404)
        # The files change only when scripts/install installs another version.
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
