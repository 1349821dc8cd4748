"""GraphiQL served by newsgraph itself, so the explorer works on a closed network.

``scripts/install`` installs GraphiQL, its Explorer plugin (build a query by
clicking fields) and React from the npm registry into
``api/http/graphiql/node_modules`` (nothing third-party is committed); this module
serves the few files the page needs from there at ``/graphiql/<name>``. When
they are absent (npm was not available at set-up) the page falls back to
strawberry's, which loads the same libraries from a CDN.

The page's fetcher sends a subscription as an event stream (``api.http.sse``),
which ``fetch`` reads with no library: a WebSocket client would be one more
package to install and serve, and SSE passes the proxies that break WebSockets.
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
    const url = window.location.pathname;
    const http = GraphiQL.createFetcher({ url });
    // Subscriptions over Server-Sent Events (graphql-sse, api/http/sse.py):
    // a POST asking for text/event-stream, each `next` event one result.
    async function* events(params, headers) {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          ...headers, "content-type": "application/json", accept: "text/event-stream",
        },
        body: JSON.stringify(params),
      });
      if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
        yield await response.json();  // refused before it started
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.search(/\\r?\\n\\r?\\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\\r?\\n\\r?\\n/, "");
          const event = /^event: ?(.*)$/m.exec(block);
          const data = /^data: ?(.*)$/m.exec(block);
          if (event && event[1] === "complete") return;
          if (event && event[1] === "next" && data) yield JSON.parse(data[1]);
        }
      }
    }
    // Whether the operation that runs is a subscription, read from the text
    // (the AST GraphiQL hands its fetcher calls every operation a query).
    function subscription(params) {
      const text = (params.query || "").replace(/#[^\\n]*/g, "");
      const found = [...text.matchAll(/(?:^|\\})\\s*(query|mutation|subscription)\\b\\s*(\\w*)/g)];
      const name = params.operationName;
      const chosen = name ? found.find((m) => m[2] === name) : found[0];
      return Boolean(chosen) && chosen[1] === "subscription";
    }
    const fetcher = (params, options) => subscription(params)
      ? events(params, (options && options.headers) || {})
      : http(params, options);
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
