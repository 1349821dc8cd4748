# newsgraph: the API and the loader, in one slim image that runs as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY newsgraph ./newsgraph
COPY api ./api
COPY loaders ./loaders
RUN pip install --disable-pip-version-check . \
 && useradd --system --uid 10001 --no-create-home newsgraph
COPY examples ./examples

USER newsgraph
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["newsgraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
