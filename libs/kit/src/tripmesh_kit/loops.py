"""Background loops that end when their task is cancelled, even if the cancellation was lost.

On Python 3.11, `asyncio.wait_for` returns the inner result instead of raising when the
cancellation arrives in the same loop turn as that result (CPython gh-86296, fixed in 3.12 by
a rewrite). nats-py and psycopg_pool wait that way, so a sweeper or poller whose `stop()`
cancels it can, rarely, catch the cancellation nowhere, keep looping, and leave `stop()`
waiting forever. The task still knows it was asked to stop: `Task.cancelling()` stays above
zero until someone calls `uncancel()`.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """`asyncio.sleep` for a loop stopped by cancelling its task: a cancellation that was
    swallowed on the way ends the loop here instead of never."""
    stop_if_cancelled()
    await asyncio.sleep(seconds)
