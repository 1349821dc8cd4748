# newsgraph: the API and the loader, in one slim image that runs as a non-root user.

# GraphiQL's assets, from the npm registry (the explorer then works without a CDN).
FROM node:20-slim AS graphiql
WORKDIR /graphiql
COPY api/http/graphiql/package.json api/http/graphiql/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NEWSGRAPH_GRAPHIQL_ASSETS=/app/graphiql
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY core ./core
COPY newsgraph ./newsgraph
COPY api ./api
COPY loaders ./loaders
# The product only: the test extra's tools (scripts/install) stay out of the image.
RUN pip install --disable-pip-version-check -c constraints.txt . \
 && useradd --system --uid 10001 --no-create-home newsgraph
# Only the files the page loads (api/http/explorer.py, ASSETS), with their licences.
COPY --from=graphiql /graphiql/node_modules/react/umd/react.production.min.js \
     /graphiql/node_modules/react/LICENSE /app/graphiql/react/umd/
COPY --from=graphiql /graphiql/node_modules/react-dom/umd/react-dom.production.min.js \
     /graphiql/node_modules/react-dom/LICENSE /app/graphiql/react-dom/umd/
COPY --from=graphiql /graphiql/node_modules/graphiql/graphiql.min.js \
     /graphiql/node_modules/graphiql/graphiql.min.css \
     /graphiql/node_modules/graphiql/LICENSE /app/graphiql/graphiql/
# The Explorer plugin ships no LICENSE file (its package.json says MIT; it comes
# from graphiql's repository, whose LICENSE is above); its browser build bundles
# graphiql-explorer, whose LICENSE comes along.
COPY --from=graphiql /graphiql/node_modules/@graphiql/plugin-explorer/dist/index.umd.js \
     /graphiql/node_modules/@graphiql/plugin-explorer/dist/style.css \
     /app/graphiql/@graphiql/plugin-explorer/dist/
COPY --from=graphiql /graphiql/node_modules/@graphiql/plugin-explorer/package.json \
     /app/graphiql/@graphiql/plugin-explorer/
COPY --from=graphiql \
     /graphiql/node_modules/@graphiql/plugin-explorer/node_modules/graphiql-explorer/LICENSE \
     /app/graphiql/@graphiql/plugin-explorer/node_modules/graphiql-explorer/
COPY examples ./examples

USER newsgraph
# The API; the probes' port (8001) is for the orchestrator, not published.
EXPOSE 8000
# Liveness (/healthz), not readiness (/readyz): a store outage must not get the
# API replaced or held back; and on the probes' port, answered by a process of
# its own, so that a busy API is not restarted either (README, Operations).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8001/healthz', timeout=2).status != 200)"
CMD ["newsgraph", "serve", "--host", "0.0.0.0", "--port", "8000", "--health-port", "8001"]
