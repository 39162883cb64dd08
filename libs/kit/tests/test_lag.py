"""The lag gauges read a durable consumer's pending / ack-pending and the DLQ's depth from a
real JetStream server (a private one: this test provisions streams and a durable)."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js import api
from tripmesh_contracts import streams
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit import lag
from tripmesh_kit.bus import consumer_config, provision

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(stream="LAGTEST", durable="lag-test", filter_subject="lagtest.>")


def value(gauge: object, consumer: str | None = None) -> float:
    metric = gauge.labels(consumer=consumer) if consumer else gauge  # type: ignore[attr-defined]
    return float(metric._value.get())


async def test_gauges_follow_the_consumer_and_the_dlq(own_nats_url: str) -> None:
    nc = await nats.connect(own_nats_url)
    js = nc.jetstream()
    try:
        await provision(js, [streams.DLQ], [])
        await js.add_stream(api.StreamConfig(name=SPEC.stream, subjects=["lagtest.>"]))
        await js.add_consumer(SPEC.stream, consumer_config(SPEC))
        for i in range(5):
            await js.publish(f"lagtest.{i}", b"x")
        await js.publish("dlq.lagtest.1", b"dead")
        sub = await js.pull_subscribe_bind(SPEC.durable, SPEC.stream)
        taken = await sub.fetch(2, timeout=5)  # in flight, not acked
        assert len(taken) == 2

        poller = lag.start_lag_poller(lambda: js, [SPEC], dlq=True, every=0.1)
        try:
            for _ in range(100):
                if value(lag.CONSUMER_PENDING, SPEC.durable) == 3 and value(lag.DLQ_MESSAGES) == 1:
                    break
                await asyncio.sleep(0.05)
            assert value(lag.CONSUMER_PENDING, SPEC.durable) == 3
            assert value(lag.CONSUMER_ACK_PENDING, SPEC.durable) == 2
            assert value(lag.DLQ_MESSAGES) == 1
            assert value(lag.CONSUMER_POLL_ERRORS, SPEC.durable) == 0
            info = lag.CONSUMER_INFO.labels(consumer="lag-test", stream="LAGTEST", filter_subject="lagtest.>")
            assert info._value.get() == 1

            await js.delete_consumer(SPEC.stream, SPEC.durable)  # a failing poll does not stop it
            for _ in range(100):
                if value(lag.CONSUMER_POLL_ERRORS, SPEC.durable) == 1:
                    break
                await asyncio.sleep(0.05)
            assert value(lag.CONSUMER_POLL_ERRORS, SPEC.durable) == 1
            assert not poller.done()
        finally:
            await lag.stop_lag_poller(poller)
    finally:
        await nc.close()
