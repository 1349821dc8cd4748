"""What a subscription's connection holds that its client has not read, in bytes.

A client that stops reading was bounded by count (a queue of
``NEWSGRAPH_SUBSCRIPTION_QUEUE`` answers, ``api.live.feed``) and by time (the
send timeout, ``api.http.connections``), not by bytes: what it had not read
stayed in the server, as much as its answers weighed, for up to 15 s
(measured: README, Subscriptions). Each of those bytes is in one of two
places, and :class:`Unsent` counts both:

- handed to the ASGI ``send`` and not yet returned: Uvicorn's ``send`` first
  waits while the transport's buffer is over its high-water mark (64 KiB),
  and only then writes the message (``uvicorn.protocols.http.h11_impl``'s
  ``RequestResponseCycle.send`` and ``websockets_sansio_impl``'s ``send``,
  read in Uvicorn 0.54), so a message waiting there is still ours;
- written, in the transport's buffer, waiting for the kernel to take it:
  the ASGI interface does not show it, so newsgraph's own server protocols
  (``api.http.connections``) put the transport's ``get_write_buffer_size``
  in the scope's extensions, as :data:`EXTENSION`. Under another server
  only the first place is counted.

What the kernel holds (its socket buffers) is not the process's memory and
is not counted.

The decision what to do with a client over the bound is the feed's
(``api.live.feed.Feed.admits``), the same for both transports; each
transport's send path measures with an :class:`Unsent` and asks it before
each message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: The scope extension through which a server says how many bytes a
#: connection's transport holds unsent: a callable without arguments.
EXTENSION = "newsgraph.unsent"


class Unsent:
    """The bytes one connection holds unsent: in sends not yet returned, and
    in its transport's buffer where the server tells (:data:`EXTENSION`)."""

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        extensions = scope.get("extensions") or {}
        self._buffered: Callable[[], int] | None = extensions.get(EXTENSION)
        #: Bytes handed to ``send`` whose call has not returned.
        self.sending = 0

    @property
    def bytes(self) -> int:
        buffered = self._buffered() if self._buffered is not None else 0
        return self.sending + buffered

    async def send(self, write: Awaitable[None], size: int) -> None:
        """Await ``write``, a send of ``size`` bytes, counting them meanwhile."""
        self.sending += size
        try:
            await write
        finally:
            self.sending -= size
