"""The batch consumer of `usage.llm.>`: pull from the shared durable, hand batches to the
ingestor, fetch the next batch only after the last one is acked.

Why not FastStream's `PullSub(batch=True)` (what `tripmesh_kit.subscribe.durable_subscriber(...,
batch=True)` builds): measured with FastStream 0.7.8 and nats-py 2.16 under load, its fetch
loop (`BatchPullStreamSubscriber._consume_pull`) suppresses `nats.errors.TimeoutError`, but
nats-py's `_fetch_n` raises a plain `asyncio.TimeoutError` when a window's last, short fetch
runs out of time after its no-wait probe. The loop task then dies (FastStream restarts it)
and the messages it had already collected for the batch are dropped unacked: each such batch
stalls for a full AckWait (30 s) and is redelivered. This loop keeps what it has collected.

Batching: wait (long poll) for the first message, then collect more for at most `window`
seconds or until `batch_size`. A store outage blocks inside the ingestor (with in-progress
acks), so nothing more is fetched until the database is back: the consumer pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit.logging import get_logger

from tripmesh_cost_ledger.ingest import BatchIngestor

log = get_logger(__name__)

IDLE_POLL_SECONDS = 5.0
"""How long one idle pull request waits for a first message (then it is renewed)."""


class UsagePuller:
    def __init__(
        self, ingestor: BatchIngestor, spec: ConsumerSpec, *, batch_size: int, window_seconds: float
    ) -> None:
        self.ingestor = ingestor
        self.spec = spec
        self.batch_size = batch_size
        self.window_seconds = window_seconds
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = True

    async def start(self, js: JetStreamContext) -> None:
        self._sub = await js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="ledger-usage-puller")

    async def stop(self, drain_timeout: float) -> None:
        """Stop fetching; let the batch in hand finish (up to `drain_timeout`)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if self._idle:
                task.cancel()  # only waiting for a first message: nothing in hand
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, drain_timeout)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _run(self) -> None:
        while not self._stopping:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                await self.ingestor.handle(batch)
            except Exception:
                # left unacked: redelivered after AckWait (to this or another replica)
                log.exception("usage_batch_failed", size=len(batch))

    async def _next_batch(self) -> list[Msg]:
        assert self._sub is not None
        self._idle = True
        try:
            msgs = await self._sub.fetch(self.batch_size, timeout=IDLE_POLL_SECONDS)
        except TimeoutError:  # nats' and asyncio's timeouts alike: nothing arrived
            return []
        except Exception as exc:  # reconnecting, consumer missing: try again shortly
            log.warning("usage_fetch_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(1.0)
            return []
        finally:
            self._idle = False
        deadline = time.monotonic() + self.window_seconds
        while len(msgs) < self.batch_size and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining < 0.005:
                break
            try:
                msgs += await self._sub.fetch(self.batch_size - len(msgs), timeout=remaining)
            except Exception:  # timeout or trouble: ingest what is already in hand
                break
        return msgs
