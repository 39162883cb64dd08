"""A concurrent JetStream pull subscriber that fetches a message only for a free worker.

FastStream 0.7.8's `ConcurrentPullStreamSubscriber` fetches, then queues the message for a
worker: with every worker busy one message sits fetched (its AckWait running) and more wait
on the worker semaphore. `stop()` then skips them (`consume` returns once `running` is
false) and cancels the queue task, so a SIGTERM drain left 1–2 messages unacked, delivered
again only after AckWait (tests/chaos/test_sigterm_drain.py; libs/kit/tests/test_drain_fetch.py).

Here a worker slot is taken *before* the fetch and given back when the handler returns, and
a message in hand (being fetched or handled) is held in the subscriber's in-flight lock, so
`stop()`'s graceful wait covers the fetch under way as well as the handlers. Retries are
still JetStream's (AckWait, max_deliver, backoff): nothing here re-delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from faststream.nats.subscriber.usecases.stream_pull_subscriber import (
    ConcurrentPullStreamSubscriber,
)
from nats.errors import ConnectionClosedError
from nats.js.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from nats.aio.msg import Msg

_FETCH_ENDED = (TimeoutError, ConnectionClosedError, ServiceUnavailableError)
"""An empty or interrupted fetch (the builtin TimeoutError covers nats-py's subclass and the
plain `asyncio.TimeoutError` its fetch lets escape; see tripmesh_kit.subscribe)."""


class FetchForFreeWorkerSubscriber(ConcurrentPullStreamSubscriber):
    __slots__ = ()  # same layout as the FastStream class, so an instance can be re-classed

    async def _create_subscription(self) -> None:
        if self.subscription:
            return
        self.subscription = await self.jetstream.pull_subscribe(
            subject=self.subject.broker_address,
            config=self.config,
            **self.extra_options,
        )
        self._handlers: set[asyncio.Task[None]] = set()
        self.add_task(self._fetch_for_free_workers)

    async def _fetch_for_free_workers(self) -> None:
        assert self.subscription is not None
        while self.running:
            await self.limiter.acquire()
            if not self.running:  # a worker freed up only because the drain began
                self.limiter.release()
                return
            self.lock.__enter__()  # in hand from here: stop() waits for it (a counting lock)
            messages: list[Msg] = []
            try:
                with contextlib.suppress(*_FETCH_ENDED):
                    messages = await self.subscription.fetch(batch=1, timeout=self.pull_sub.timeout)
            except BaseException:
                self._release()
                raise
            if not messages:
                self._release()
                continue
            task = asyncio.create_task(self._handle(messages[0]))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _handle(self, msg: Msg) -> None:
        try:
            # not `consume()`: it skips a message once `running` is false, and a message
            # fetched before the drain began is still ours to finish
            with contextlib.suppress(Exception):  # logged by FastStream's middleware
                await self.process_message(msg)
        finally:
            self._release()

    def _release(self) -> None:
        self.lock.__exit__(None, None, None)
        self.limiter.release()

    async def stop(self) -> None:
        # graceful wait (fetch under way + handlers), then the fetch task is cancelled
        await super().stop()
        for task in list(getattr(self, "_handlers", ())):  # past graceful_timeout
            task.cancel()


def fetch_for_free_workers(subscriber: Any) -> Any:
    """Re-class a FastStream concurrent pull subscriber (what `broker.subscriber(...,
    max_workers>1, pull_sub=...)` returns) as `FetchForFreeWorkerSubscriber`."""
    if type(subscriber) is ConcurrentPullStreamSubscriber:
        subscriber.__class__ = FetchForFreeWorkerSubscriber
    return subscriber
