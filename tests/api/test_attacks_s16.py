"""Hostile checks of the answers each worker keeps (api/operation/answered.py),
beside tests/api/test_answered.py: what a client, or the load it makes, can
do to what is kept and to when it is trusted."""

from __future__ import annotations

import asyncio
import time

from api.data.changes import Changes
from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from core.config import Settings
from core.store import Store


def test_store_slots_full_of_clients_calls_do_not_turn_kept_answers_off(
    loaded: Store, api_settings: Settings
) -> None:
    """Clients whose calls fill every store slot (distinct queries, each a
    miss) must not make the worker's change-marker read shed: shed, the
    marker is not trusted two intervals later, and every kept answer is made
    again, each needing a slot too, just when they are scarcest."""

    async def run() -> None:
        slots = StoreSlots(size=1, wait_ms=20)
        gateway = Gateway(loaded, 5000, slots)
        changes = Changes(gateway, 1.0)
        # A client's call holds the only slot, longer than a call may wait for one.
        busy = asyncio.ensure_future(slots.run(lambda: time.sleep(0.3)))
        await asyncio.sleep(0.05)
        assert slots.in_flight == 1
        began = time.monotonic()
        await changes.read()
        assert not changes.failed, "the marker read was shed"
        assert changes.value is not None
        assert time.monotonic() - began < 10  # waited for the slot, not for ever
        await busy
        await changes.close()

    asyncio.run(run())
