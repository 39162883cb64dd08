"""tripmesh_kit.loops: a loop whose cancellation was swallowed still ends at its next pause."""

from __future__ import annotations

import asyncio
import contextlib

from tripmesh_kit.loops import pause


async def test_a_swallowed_cancellation_ends_the_loop_at_its_next_pause() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            # what 3.11's wait_for can do: the cancellation never reaches the loop's code
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            await pause(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled()
    assert rounds == 1


async def test_without_a_cancellation_pause_sleeps() -> None:
    async def loop() -> int:
        n = 0
        while n < 3:
            n += 1
            await pause(0)
        return n

    assert await loop() == 3
