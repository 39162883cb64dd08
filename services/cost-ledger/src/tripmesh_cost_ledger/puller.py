"""The batch consumer of `usage.llm.>`: pull requests on the shared durable, delivered into
one callback per request, up to `concurrency` batches ingested at once.

Why not `PullSubscription.fetch` (nats-py) or FastStream's `PullSub(batch=True)`:
- measured (bench/ledger, 50,000 messages, same machine): nats-py's `fetch` costs ~109 us of
  CPU per message (every `next_msg` wraps the queue get in `wait_for`, a task per message);
  the same messages delivered to one subscription callback cost ~25 us, acks included. At
  the ledger's 10,000 events/s target that difference is a whole core;
- FastStream 0.7.8's batch loop drops the messages it collected when nats-py raises a plain
  `asyncio.TimeoutError` (see tripmesh_kit.subscribe), stalling each such batch for AckWait.

The JetStream pull protocol used here is the public one: a request on
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` with `{"batch", "expires"}` and a reply subject;
the server delivers up to `batch` messages to that subject, or ends the request early with a
status message (408 expired, 409 e.g. max waiting exceeded or consumer deleted). Each request
gets its own reply subject and subscription (unsubscribed when it ends), so a late delivery is
never confused with a later request's.

Batching: long-poll (batch of 1, `IDLE_POLL_SECONDS`) for a first message, then one request
for the rest of the batch that expires after `window` seconds; while batches come back full,
skip the long poll. Ack semantics are unchanged (`BatchIngestor`: ack after commit). A store
outage blocks the batches inside the ingestor (with in-progress acks), every slot stays
taken, and nothing more is fetched until the database is back: the consumer pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit.logging import get_logger

from tripmesh_cost_ledger.ingest import BatchIngestor

log = get_logger(__name__)

IDLE_POLL_SECONDS = 5.0
"""How long one idle pull request waits for a first message (then it is renewed)."""
STATUS = "Status"
END_GRACE_SECONDS = 2.0
"""How long past its expiry a request is waited for when its end status never came (a
reconnect loses it)."""


class _Request:
    """One pull request: the messages delivered to its reply subject, and whether it ended."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.sub: Subscription | None = None
        self.msgs: list[Msg] = []
        self.first = asyncio.Event()
        self.done = asyncio.Event()
        self.status: str | None = None


class UsagePuller:
    def __init__(
        self,
        ingestor: BatchIngestor,
        spec: ConsumerSpec,
        *,
        batch_size: int,
        window_seconds: float,
        concurrency: int = 2,
    ) -> None:
        self.ingestor = ingestor
        self.spec = spec
        self.batch_size = batch_size
        self.window_seconds = window_seconds
        self.concurrency = concurrency
        """Batches ingested at once: one commits while the next is decoded and copied."""
        self._nc: Client | None = None
        self._prefix = ""
        self._next_subject = ""
        self._ids = itertools.count()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._fetcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = True

    async def start(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.spec.stream}.{self.spec.durable}"
        self._stopping = False
        self._fetcher = asyncio.create_task(self._fetch_loop(), name="ledger-usage-fetcher")

    async def stop(self, drain_timeout: float) -> None:
        """Stop fetching; let the batches in hand finish (up to `drain_timeout`)."""
        self._stopping = True
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            if self._idle:
                fetcher.cancel()  # only waiting for a first message: nothing in hand
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(fetcher, drain_timeout)
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=drain_timeout)
            for task in pending:  # left unacked: redelivered after AckWait
                task.cancel()

    # --- delivery ---------------------------------------------------------------------------

    @staticmethod
    async def _deliver(request: _Request, msg: Msg) -> None:
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is not None and not msg.data:
            if status == "100":  # idle heartbeat / flow control: not an end
                return
            request.status = status
            request.done.set()
            return
        request.msgs.append(msg)
        request.first.set()
        if len(request.msgs) >= request.batch:
            request.done.set()

    async def _pull(self, batch: int, expires: float) -> _Request:
        assert self._nc is not None
        request = _Request(batch)
        # its own subscription: a delivered message carries its original subject, so only
        # the subscription tells which request it answers
        request.sub = await self._nc.subscribe(
            f"{self._prefix}.{next(self._ids)}",
            cb=functools.partial(self._deliver, request),
            pending_msgs_limit=max(4 * batch, 1024),
            pending_bytes_limit=128 * 1024 * 1024,
        )
        body = json.dumps({"batch": batch, "expires": int(expires * 1e9)}).encode()
        await self._nc.publish(self._next_subject, body, reply=request.sub.subject)
        return request

    async def _finish(self, request: _Request, expires: float) -> list[Msg]:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(request.done.wait(), expires + END_GRACE_SECONDS)
        finally:
            if request.sub is not None:
                # a message still on its way (or sent to a request the server still holds
                # after a stop) is dropped here and comes back after AckWait
                with contextlib.suppress(Exception):
                    await request.sub.unsubscribe()
        if request.status not in (None, "404", "408"):
            log.warning("usage_pull_ended", status=request.status, received=len(request.msgs))
        return request.msgs

    # --- batching ---------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        """Pull a batch only when an ingest slot is free: every message in hand is in a batch
        being ingested (which keeps it alive with in-progress acks), none waits in a queue
        running out its AckWait while the database is down."""
        full = False
        while not self._stopping:
            await self._slots.acquire()
            try:
                batch = await self._next_batch(skip_long_poll=full)
            except Exception as exc:  # not connected, reconnecting: try again shortly
                self._slots.release()
                log.warning("usage_fetch_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)
                continue
            except BaseException:
                self._slots.release()
                raise
            full = len(batch) >= self.batch_size
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._ingest(batch), name="ledger-usage-batch")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _next_batch(self, *, skip_long_poll: bool) -> list[Msg]:
        msgs: list[Msg] = []
        if not skip_long_poll:
            self._idle = True
            try:
                msgs = await self._finish(await self._pull(1, IDLE_POLL_SECONDS), IDLE_POLL_SECONDS)
            finally:
                self._idle = False
            if not msgs:
                return []
        rest = self.batch_size - len(msgs)
        if rest > 0 and not self._stopping:
            msgs += await self._finish(await self._pull(rest, self.window_seconds), self.window_seconds)
        return msgs

    async def _ingest(self, batch: list[Msg]) -> None:
        try:
            await self.ingestor.handle(batch)
        except Exception:
            # left unacked: redelivered after AckWait (to this or another replica)
            log.exception("usage_batch_failed", size=len(batch))
        finally:
            self._slots.release()
