"""The request context's batch loaders."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from api.schema.context import SharedLoader


def test_a_field_cancelled_does_not_cancel_its_batch_for_the_others():
    """graphql-core cancels a failed field's siblings; another field waiting on
    the same batched answer must still get it."""

    async def scenario() -> tuple[bool, str]:
        release = asyncio.Event()

        async def load(keys: Sequence[str]) -> list[str]:
            await release.wait()
            return [k.upper() for k in keys]

        loader: SharedLoader[str, str] = SharedLoader(load_fn=load)

        async def field() -> str:
            return await loader.load("a")

        cancelled, survivor = asyncio.create_task(field()), asyncio.create_task(field())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        release.set()
        answer = await survivor
        return cancelled.cancelled(), answer

    assert asyncio.run(scenario()) == (True, "A")
