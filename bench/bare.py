"""Bare Starlette endpoints, the baselines no GraphQL server can beat.

``uvicorn --factory bench.bare:create_app``: the throughput baseline, which
answers the front page with raw pymongo and orjson.

``uvicorn --factory bench.bare:create_precomputed_app``: the ``cpu`` baseline,
which answers ``POST /<query>`` (or GET) with the real app's response to that query,
encoded once beforehand: what serving those bytes over HTTP costs, and nothing else.

``uvicorn --factory bench.bare:create_raw_app``: the same answers from a plain
ASGI function, no Starlette: what Uvicorn itself (its HTTP/1.1 protocol, the
event loop, the sockets) costs per request, the part of the baseline no
application can remove (``cpu_floor``).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.querying import Limits
from bench.stubbed import Capture
from core.config import Settings
from core.store import connect


def create_app() -> Starlette:
    limits = Limits(connect(Settings.from_env()))

    async def front_page(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(limits.front_page)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/front", front_page, methods=["GET", "POST"])])


def create_precomputed_app() -> Starlette:
    """The answers of the capture named by ``NEWSGRAPH_BENCH_CAPTURE``."""
    answers = Capture.from_env().answers

    async def answer(request: Request) -> Response:
        await request.body()  # read as the API reads its POST body
        return Response(answers[request.path_params["query"]], media_type="application/json")

    return Starlette(routes=[Route("/{query}", answer, methods=["GET", "POST"])])


def create_raw_app() -> Any:
    """The answers of the capture named by ``NEWSGRAPH_BENCH_CAPTURE`` at
    ``/<query>``, with the headers Starlette's response gives them
    (``content-length``, ``content-type``), from a bare ASGI callable."""
    answers = {f"/{name}": body for name, body in Capture.from_env().answers.items()}
    json_type = (b"content-type", b"application/json")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:  # read as the API reads its POST body
            more = (await receive()).get("more_body", False)
        body = answers[scope["path"]]
        length = (b"content-length", str(len(body)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [length, json_type]})
        await send({"type": "http.response.body", "body": body})

    return app
