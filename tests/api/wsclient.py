"""Clients for subscription tests: gql's, as an application would use it, and
a raw graphql-transport-ws client that does only what a test tells it (it
answers no ping and reads only when asked), to play the hostile or broken one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2 as httpx
import orjson
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "graphql-transport-ws"


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1) + "/graphql"


def transport(url: str, token: str | None = None, **kwargs: Any) -> WebsocketsTransport:
    """gql's WebSocket transport, speaking graphql-transport-ws."""
    payload = {"authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(
        url=ws_url(url), subprotocols=[PROTOCOL], init_payload=payload, **kwargs
    )


def metric(url: str, name: str) -> float:
    """One sample of the server's Prometheus metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def subscribed(url: str, count: int, timeout: float = 10) -> None:
    """Wait until the server holds ``count`` subscriptions and has polled
    once since: what is written from now on reaches them."""
    deadline = time.monotonic() + timeout

    async def until(condition: Any, what: str) -> None:
        while not await asyncio.to_thread(condition):
            assert time.monotonic() < deadline, f"not seen within {timeout}s: {what}"
            await asyncio.sleep(0.02)

    await until(lambda: metric(url, "newsgraph_subscriptions") == count, f"{count} subscriptions")
    polls = metric(url, "newsgraph_subscription_polls_total")
    await until(lambda: metric(url, "newsgraph_subscription_polls_total") > polls, "a poll")


class Raw:
    """A graphql-transport-ws client that does only what it is told."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Raw:
        return cls(await connect(ws_url(url), subprotocols=[PROTOCOL], **kwargs))  # type: ignore[list-item]

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        await self.ws.send(message)

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next message that is not a ping."""
        while True:
            message = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message.get("type") != "ping":
                return message

    async def init(self, token: str | None = None) -> None:
        payload = {"authorization": f"Bearer {token}"} if token else None
        await self.send({"type": "connection_init", "payload": payload})
        assert (await self.receive())["type"] == "connection_ack"

    async def subscribe(self, op_id: str, query: str, variables: dict | None = None) -> None:
        payload = {"query": query, "variables": variables}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def closed(self, timeout: float = 10) -> tuple[int | None, str]:
        """Read until the server closes: its close code and reason."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"the server did not close within {timeout}s"
                await asyncio.wait_for(self.ws.recv(), left)
        except ConnectionClosed as closed:
            received = closed.rcvd
            return (received.code, received.reason) if received else (None, "")

    async def close(self) -> None:
        await self.ws.close()
