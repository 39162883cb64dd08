"""Batch pulls must not lose a partly filled batch (FastStream + nats-py timeout mismatch).

Oracle: every message reaches the handler on its *first* delivery. Without the fix in
tripmesh_kit.subscribe, a fetch that times out after a partial batch dropped what it had
gathered and those messages only came back after AckWait (num_delivered == 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from faststream.nats import NatsMessage
from nats.aio.msg import Msg
from tripmesh_contracts import UsageEvent, streams, subjects
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.subscribe import durable_subscriber

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(
    stream=streams.USAGE.name,
    durable="kit-batch-test",
    filter_subject=subjects.USAGE_ALL,
    ack_wait_seconds=30,
)


async def test_partial_batches_are_handled_on_first_delivery(own_nats_url: str) -> None:
    broker = make_broker(own_nats_url, "kit-batch-test")
    bus = Bus(broker)
    deliveries: dict[str, int] = {}

    @durable_subscriber(broker, SPEC, batch=True, batch_size=50, fetch_timeout=0.15)
    async def on_batch(msg: NatsMessage) -> None:
        raws: Iterable[Msg] = msg.raw_message  # type: ignore[assignment]
        for raw in raws:
            deliveries[UsageEvent.from_bytes(raw.data).id] = raw.metadata.num_delivered
            await raw.ack()

    await broker.connect()
    await provision(bus.js, consumers=[SPEC])
    await broker.start()
    try:
        sent = []
        for i in range(40):
            event = UsageEvent(user_id="u1", model="m", provider="p", prompt_tokens=i)
            await bus.publish(event, subjects.usage("u1"))
            sent.append(event.id)
            await asyncio.sleep(0.03 * (i % 7))  # trickle: batches close part-full
        for _ in range(400):
            if len(deliveries) == len(sent):
                break
            await asyncio.sleep(0.05)
        assert set(deliveries) == set(sent), "some messages never arrived within 20 s"
        assert all(n == 1 for n in deliveries.values()), deliveries
    finally:
        await broker.stop()
