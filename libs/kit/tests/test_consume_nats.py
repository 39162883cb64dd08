"""The reliable-consumer rules against a real nats-server with JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsMessage
from tripmesh_contracts import PlanCancel, streams, subjects
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_kit import consume
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.subscribe import durable_subscriber

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(
    stream=streams.PLAN_COMMANDS.name,
    durable="kit-test",
    filter_subject=subjects.PLAN_CMD_CANCEL,
    ack_wait_seconds=30,
    max_deliver=3,
    nak_delays_seconds=[0.2, 0.2, 0.2],
)


class Recorder:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.calls: dict[str, int] = {}
        self.outage_left = 0

    async def work(self, m: PlanCancel) -> None:
        self.calls[m.id] = self.calls.get(m.id, 0) + 1
        if m.reason == "poison":
            raise consume.PermanentError("deterministic failure")
        if m.reason == "flaky" and self.calls[m.id] < 2:
            raise consume.TransientError("try again")
        if m.reason == "always-fails":
            raise RuntimeError("still broken")
        if m.reason == "outage" and self.outage_left > 0:
            self.outage_left -= 1
            raise ConnectionError("database down")
        self.done.append(m.id)


@pytest.fixture
async def harness(own_nats_url: str) -> AsyncIterator[tuple[Bus, Recorder]]:
    broker = make_broker(own_nats_url, "kit-test")
    bus = Bus(broker)
    rec = Recorder()

    @durable_subscriber(broker, SPEC, max_workers=4)
    async def handler(msg: NatsMessage) -> None:
        await consume.handle_message(
            msg.raw_message,
            PlanCancel,
            rec.work,
            spec=SPEC,
            bus=bus,
            is_store_outage=lambda e: isinstance(e, ConnectionError),
        )

    await broker.connect()
    await provision(bus.js, consumers=[SPEC])
    await broker.start()
    yield bus, rec
    await broker.stop()


async def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def dlq_entries(bus: Bus) -> list[tuple[str, dict[str, str], bytes]]:
    sub = await bus.js.pull_subscribe("dlq.>", stream="DLQ")
    out = []
    try:
        for m in await sub.fetch(50, timeout=1):
            out.append((m.subject, dict(m.headers or {}), m.data))
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return out


async def test_consumers_keep_their_ack_wait(harness: tuple[Bus, Recorder]) -> None:
    bus, _ = harness
    await provision(bus.js, consumers=[streams.runner_consumer("planning")])
    for spec in (SPEC, streams.runner_consumer("planning")):
        info = await bus.js.consumer_info(spec.stream, spec.durable)
        assert info.config.ack_wait == spec.ack_wait_seconds
        assert info.config.max_deliver == spec.max_deliver
        assert not info.config.backoff  # see ConsumerSpec.backoff_seconds: it breaks nak delays


async def test_provision_is_idempotent(harness: tuple[Bus, Recorder]) -> None:
    bus, _ = harness
    await provision(bus.js, consumers=[SPEC])
    await provision(bus.js, consumers=[SPEC])
    names = {s.config.name for s in await bus.js.streams_info()}
    assert {s.name for s in streams.ALL_STREAMS} <= names


async def test_same_message_id_is_stored_once(harness: tuple[Bus, Recorder]) -> None:
    bus, rec = harness
    m = PlanCancel(user_id="u1", plan_id="p1")
    first = await bus.publish(m, subjects.PLAN_CMD_CANCEL)
    again = await bus.publish(m, subjects.PLAN_CMD_CANCEL)
    assert again.duplicate and again.seq == first.seq
    await wait_for(lambda: m.id in rec.done)
    await asyncio.sleep(0.3)
    assert rec.calls[m.id] == 1


async def test_poison_and_undecodable_go_to_dlq_with_error(harness: tuple[Bus, Recorder]) -> None:
    bus, rec = harness
    poison = PlanCancel(user_id="u1", plan_id="p2", reason="poison")
    good = PlanCancel(user_id="u1", plan_id="p3")
    await bus.publish(poison, subjects.PLAN_CMD_CANCEL, headers={"X-Origin": "test"})
    # labelled as JSON, so FastStream's default decoder would choke on it before our handler
    await bus.publish_raw(
        b"{not json",
        subjects.PLAN_CMD_CANCEL,
        msg_id="junk-1",
        headers={"content-type": "application/json"},
    )
    await bus.publish(good, subjects.PLAN_CMD_CANCEL)
    await wait_for(lambda: good.id in rec.done)
    entries: list[tuple[str, dict[str, str], bytes]] = []

    async def collect() -> bool:
        entries[:] = await dlq_entries(bus)
        return len(entries) >= 2

    for _ in range(50):
        if await collect():
            break
        await asyncio.sleep(0.1)
    kinds = {h[consume.DLQ_ERROR_KIND] for _, h, _ in entries}
    assert kinds == {"permanent", "undecodable"}
    for subject, headers, _ in entries:
        assert subject == "dlq.plans.cmd.cancel"
        assert headers[consume.DLQ_SUBJECT] == "plans.cmd.cancel"
        assert headers[consume.DLQ_ERROR]
    poison_entry = next(e for e in entries if e[1][consume.DLQ_ERROR_KIND] == "permanent")
    assert poison_entry[1]["X-Origin"] == "test"  # original headers kept
    assert PlanCancel.from_bytes(poison_entry[2]).id == poison.id
    assert rec.calls[poison.id] == 1  # never retried


async def test_transient_error_is_retried_then_succeeds(harness: tuple[Bus, Recorder]) -> None:
    bus, rec = harness
    m = PlanCancel(user_id="u1", plan_id="p4", reason="flaky")
    await bus.publish(m, subjects.PLAN_CMD_CANCEL)
    await wait_for(lambda: m.id in rec.done)
    assert rec.calls[m.id] == 2


async def test_exhausted_retries_end_in_dlq_not_silence(harness: tuple[Bus, Recorder]) -> None:
    bus, rec = harness
    m = PlanCancel(user_id="u1", plan_id="p5", reason="always-fails")
    await bus.publish(m, subjects.PLAN_CMD_CANCEL)
    await wait_for(lambda: rec.calls.get(m.id, 0) >= SPEC.max_deliver)
    found: list[tuple[str, dict[str, str], bytes]] = []
    for _ in range(50):
        found = [e for e in await dlq_entries(bus) if e[1].get(consume.DLQ_ERROR_KIND) == "max_deliver"]
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1
    assert found[0][1][consume.DLQ_DELIVERIES] == str(SPEC.max_deliver)


async def test_store_outage_pauses_without_burning_deliveries(harness: tuple[Bus, Recorder]) -> None:
    bus, rec = harness
    rec.outage_left = 6  # more failures than max_deliver allows
    m = PlanCancel(user_id="u1", plan_id="p6", reason="outage")
    await bus.publish(m, subjects.PLAN_CMD_CANCEL)
    await wait_for(lambda: m.id in rec.done, timeout=60)
    info = await bus.js.consumer_info(SPEC.stream, SPEC.durable)
    assert info.num_redelivered == 0 or all(
        e[1].get(consume.DLQ_ERROR_KIND) != "max_deliver" or PlanCancel.from_bytes(e[2]).id != m.id
        for e in await dlq_entries(bus)
    )
    assert rec.calls[m.id] == 7
