"""The throughput baseline: a bare Starlette endpoint that answers the front
page with raw pymongo and orjson, no GraphQL. ``uvicorn --factory bench.bare:create_app``."""

from __future__ import annotations

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.querying import Limits
from core.config import Settings
from core.store import connect


def create_app() -> Starlette:
    limits = Limits(connect(Settings.from_env()))

    async def front_page(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(limits.front_page)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/front", front_page, methods=["GET", "POST"])])
