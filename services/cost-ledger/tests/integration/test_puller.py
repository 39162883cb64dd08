"""The usage puller against a real nats-server: the pull protocol it speaks by hand.

The ingestor here records batches and acks them (what `BatchIngestor` does after a commit),
so these tests see only the puller: every message delivered once, batches bounded by
`batch_size`, at most `concurrency` batches in hand, nothing in hand left behind by `stop`.
The real ingestor behind it is covered by test_process.py (the service process) and
test_outage.py (a database outage pauses it without a redelivery).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import nats
from nats.aio.msg import Msg
from nats.js import api
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_cost_ledger.puller import UsagePuller

SPEC = ConsumerSpec(stream="PULL", durable="pull-test", filter_subject="pull.>", max_ack_pending=20000)


async def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """A liveness bound, not a speed check."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class RecordingIngestor:
    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.batches: list[list[bytes]] = []
        self.in_hand = 0
        self.most_in_hand = 0

    async def handle(self, raws: Sequence[Msg]) -> None:
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        try:
            await asyncio.sleep(self.hold)
            for raw in raws:
                await raw.ack()
            self.batches.append([raw.data for raw in raws])
        finally:
            self.in_hand -= 1


async def _consumer(js: nats.js.JetStreamContext) -> None:
    await js.add_stream(name=SPEC.stream, subjects=[SPEC.filter_subject])
    await js.add_consumer(
        SPEC.stream,
        api.ConsumerConfig(
            durable_name=SPEC.durable,
            filter_subject=SPEC.filter_subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            max_ack_pending=SPEC.max_ack_pending,
        ),
    )


async def test_every_message_once_in_bounded_batches(ledger_nats_url: str) -> None:
    nc = await nats.connect(ledger_nats_url)
    js = nc.jetstream()
    await _consumer(js)
    ingestor = RecordingIngestor(hold=0.05)
    puller = UsagePuller(ingestor, SPEC, batch_size=100, window_seconds=0.1, concurrency=2)  # type: ignore[arg-type]
    await puller.start(nc)
    try:
        sent = [f"m{i}".encode() for i in range(1234)]
        acks = [await js.publish_async(f"pull.{i % 7}", body) for i, body in enumerate(sent)]
        await asyncio.gather(*acks)
        await wait_until(lambda: sum(map(len, ingestor.batches)) >= len(sent))
        info = await js.consumer_info(SPEC.stream, SPEC.durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert info.num_redelivered == 0
    finally:
        await puller.stop(10)
        await nc.close()
    received = [body for batch in ingestor.batches for body in batch]
    assert sorted(received) == sorted(sent)  # each exactly once
    assert max(map(len, ingestor.batches)) <= 100
    assert ingestor.most_in_hand <= 2
    assert len(ingestor.batches) < len(sent) / 10  # batched, not one by one


async def test_stop_finishes_the_batch_in_hand(ledger_nats_url: str) -> None:
    nc = await nats.connect(ledger_nats_url)
    js = nc.jetstream()
    await _consumer(js)
    ingestor = RecordingIngestor(hold=1.0)
    puller = UsagePuller(ingestor, SPEC, batch_size=50, window_seconds=0.1, concurrency=1)  # type: ignore[arg-type]
    await puller.start(nc)
    try:
        for i in range(10):
            await js.publish(f"pull.{i}", b"x")
        await wait_until(lambda: ingestor.in_hand == 1)
        await puller.stop(10)  # while the batch is being ingested
        assert sum(map(len, ingestor.batches)) == 10
        info = await js.consumer_info(SPEC.stream, SPEC.durable)
        assert info.num_ack_pending == 0
    finally:
        await nc.close()


async def test_an_idle_puller_stops_at_once_and_unsubscribes(ledger_nats_url: str) -> None:
    nc = await nats.connect(ledger_nats_url)
    js = nc.jetstream()
    await _consumer(js)
    subscriptions = len(nc._subs)
    ingestor = RecordingIngestor()
    puller = UsagePuller(ingestor, SPEC, batch_size=50, window_seconds=0.1)  # type: ignore[arg-type]
    await puller.start(nc)
    await wait_until(lambda: len(nc._subs) > subscriptions)  # long-polling for a first message
    await asyncio.wait_for(puller.stop(30), 5)  # liveness bound: not the 5 s long poll
    assert len(nc._subs) == subscriptions
    assert ingestor.batches == []
    await nc.close()
