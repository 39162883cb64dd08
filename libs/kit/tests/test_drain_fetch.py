"""A drain must not abandon messages fetched ahead of a free worker.

Oracle: after `broker.stop()` (the SIGTERM drain) with every worker busy and more messages
waiting in the stream, the durable has nothing ack-pending: every message the subscriber
fetched was handled and acked. FastStream 0.7.8's concurrent pull subscriber fetched the next
message before a worker was free, parked it, and on stop skipped it (`consume` returns when
`running` is false): it stayed ack-pending until AckWait and was delivered again.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from faststream.nats import NatsMessage
from tripmesh_contracts import UsageEvent, streams, subjects
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.subscribe import durable_subscriber

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(
    stream=streams.USAGE.name,
    durable="kit-drain-test",
    filter_subject=subjects.USAGE_ALL,
    ack_wait_seconds=60,
)
WORKERS = 3


async def test_stop_leaves_nothing_fetched_but_unhandled(own_nats_url: str) -> None:
    broker = make_broker(own_nats_url, "kit-drain-test", graceful_timeout=15)
    bus = Bus(broker)
    started: list[str] = []
    acked: list[str] = []
    busy = asyncio.Event()

    @durable_subscriber(broker, SPEC, max_workers=WORKERS, fetch_timeout=0.5)
    async def on_event(msg: NatsMessage) -> None:
        event = UsageEvent.from_bytes(msg.body)
        started.append(event.id)
        if len(started) >= WORKERS:
            busy.set()
        await asyncio.sleep(0.8)  # a job in hand when the drain starts
        await msg.ack()
        acked.append(event.id)

    await broker.connect()
    await provision(bus.js, consumers=[SPEC])
    await broker.start()
    stopped = False
    try:
        for i in range(4 * WORKERS):
            event = UsageEvent(user_id="u1", model="m", provider="p", prompt_tokens=i)
            await bus.publish(event, subjects.usage("u1"))
        await asyncio.wait_for(busy.wait(), 20)
        await asyncio.sleep(0.1)  # the fetch loop, if it fetches ahead, has done so by now
        await broker.stop()
        stopped = True
        nc = await nats.connect(own_nats_url)  # the broker's connection is closed now
        try:
            info = await nc.jetstream().consumer_info(SPEC.stream, SPEC.durable)
        finally:
            await nc.close()
        assert started, "nothing was handled"
        assert sorted(started) == sorted(acked), "a handler in flight was cut off by the drain"
        assert info.num_ack_pending == 0, (
            f"{info.num_ack_pending} fetched message(s) left unacked by the drain "
            f"(delivered {info.delivered.consumer_seq}, handled {len(acked)})"
        )
        assert info.delivered.consumer_seq == len(acked)
        assert info.num_pending == 4 * WORKERS - len(acked), "the rest stay in the stream"
    finally:
        if not stopped:
            await broker.stop()
