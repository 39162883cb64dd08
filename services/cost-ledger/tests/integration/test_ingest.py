"""Batch ingestion over real NATS JetStream and Postgres: idempotency, exact money, DLQ."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts import UsageEvent, new_id
from tripmesh_cost_ledger import metrics
from tripmesh_cost_ledger.domain import UsageRow, aggregate
from tripmesh_kit import consume

pytestmark = pytest.mark.integration

MakeUsage = Callable[..., UsageEvent]


def expected_totals(events: list[UsageEvent]) -> tuple[list[tuple[Any, ...]], ...]:
    agg = aggregate(UsageRow.from_event(e) for e in {e.id: e for e in events}.values())
    daily = [
        (u, d, t.calls, t.prompt_tokens, t.completion_tokens, t.cost_usd)
        for (u, d), t in sorted(agg.daily.items())
    ]
    plans = [
        (u, p, t.calls, t.prompt_tokens, t.completion_tokens, t.cost_usd, t.first_at, t.last_at)
        for (u, p), t in sorted(agg.plans.items())
    ]
    return daily, plans


async def test_a_batch_is_ingested_with_running_totals(ledger: Any, make_usage: MakeUsage) -> None:
    now = datetime.now(UTC)
    events = [
        make_usage(
            "user-a",
            plan_id=f"plan-{i % 3}",
            agent="location",
            cost="0.00012345",
            occurred_at=now - timedelta(days=i % 2),
        )
        for i in range(120)
    ] + [make_usage("user-b", plan_id="plan-b", cost="0.5", occurred_at=now)]
    await ledger.publish(*events)
    await ledger.wait_until(lambda: ledger.caught_up())
    _, daily, plans = await ledger.state()
    assert await ledger.count_events() == len(events)
    assert (daily, plans) == expected_totals(events)
    # batches, not one message per transaction
    assert metrics.BATCH_SIZE.collect()[0].samples  # histogram observed
    batches = await ledger.fetch("SELECT count(DISTINCT ingested_at) FROM ledger.usage_events")
    assert batches[0][0] < len(events)


async def test_redelivered_and_replayed_events_change_nothing(ledger: Any, make_usage: MakeUsage) -> None:
    events = [make_usage("user-a", cost=f"0.{i:02d}", plan_id=f"p{i % 4}") for i in range(40)]
    await ledger.publish(*events)
    await ledger.wait_until(lambda: ledger.caught_up())
    before = await ledger.state()
    duplicates_before = metrics.DUPLICATES._value.get()

    # A replay: the same event ids again as new stream messages (beyond JetStream's
    # duplicate window they would be stored again, so force that with fresh Nats-Msg-Ids).
    for event in events:
        await ledger.publish_raw(event.to_bytes(), event.user_id, msg_id=new_id())
    await ledger.wait_until(lambda: ledger.caught_up())
    assert metrics.DUPLICATES._value.get() - duplicates_before == len(events)
    assert await ledger.state() == before

    # A redelivery: the very stream messages handed to the live ingest code again, twice
    # (as after a lost ack), in one batch and in two overlapping ones.
    ingestor = ledger.app.state.ingestor
    await ingestor.handle(await stream_messages(ledger, len(events)))
    first, again = await stream_messages(ledger, 20), await stream_messages(ledger, 20)
    await ingestor.handle(first[:10] + again[:10] + first[10:])
    assert await ledger.state() == before


async def test_totals_are_the_exact_sum_of_distinct_events(ledger: Any, make_usage: MakeUsage) -> None:
    # amounts that binary floats can't hold; 10 x 0.1 must be exactly 1
    costs = ["0.1"] * 10 + ["0.00000001", "0.12345678", "3.33333333"]
    events = [make_usage("user-exact", plan_id="plan-x", cost=c) for c in costs]
    await ledger.publish(*events, events[0], events[3])  # two duplicates (deduped by NATS)
    for event in events[:5]:  # and five replayed under new message ids
        await ledger.publish_raw(event.to_bytes(), event.user_id, msg_id=new_id())
    await ledger.wait_until(lambda: ledger.caught_up())
    rows = await ledger.fetch(
        "SELECT sum(cost_usd) FROM ledger.user_daily_totals WHERE user_id = 'user-exact'"
    )
    plan = await ledger.fetch("SELECT calls, cost_usd FROM ledger.plan_totals WHERE plan_id = 'plan-x'")
    exact = sum((Decimal(c) for c in costs), Decimal(0))
    assert exact == Decimal("4.45679012")
    assert rows[0][0] == exact
    assert plan == [(len(costs), exact)]


async def test_undecodable_event_goes_to_dlq_and_the_rest_are_ingested(
    ledger: Any, make_usage: MakeUsage
) -> None:
    good = [make_usage("user-a", cost="0.2") for _ in range(5)]
    await ledger.publish(good[0], good[1])
    await ledger.publish_raw(b"{not json", "user-a", msg_id="junk-1")
    await ledger.publish_raw(b'{"user_id": "user-a", "id": "x1"}', "user-a", msg_id="junk-2")
    # claims JSON but isn't: must reach the DLQ like any other undecodable body
    await ledger.publish_raw(
        b"\xff{", "user-a", msg_id="junk-3", headers={"content-type": "application/json"}
    )
    await ledger.publish(*good[2:])
    await ledger.wait_until(lambda: ledger.caught_up())
    assert await ledger.count_events() == 5

    dead = await dlq_entries(ledger, 3)
    assert [subject for subject, _, _ in dead] == ["dlq.usage.llm.user-a"] * 3
    assert {h[consume.DLQ_ERROR_KIND] for _, h, _ in dead} == {"undecodable"}
    assert {data for _, _, data in dead} == {b"{not json", b'{"user_id": "user-a", "id": "x1"}', b"\xff{"}
    for _, headers, _ in dead:
        assert "UsageEvent" in headers[consume.DLQ_ERROR]
        assert headers[consume.DLQ_CONSUMER] == "cost-ledger-usage"


async def test_an_event_the_database_refuses_is_dead_lettered_alone(
    ledger: Any, make_usage: MakeUsage
) -> None:
    # valid by the contract, but refused by Postgres: beyond numeric(18, 8), and a NUL byte
    # in a text column. The batch falls back to one event at a time.
    too_big = make_usage("user-a", cost="12345678901.5")
    nul = make_usage("user-a", cost="1", error="broken\x00reply")
    others = [make_usage("user-a", cost="1") for _ in range(4)]
    await ledger.publish(others[0], others[1], too_big, others[2], nul, others[3])
    await ledger.wait_until(lambda: ledger.caught_up())
    assert await ledger.count_events() == 4
    dead = await dlq_entries(ledger, 2)
    assert {h[consume.DLQ_ERROR_KIND] for _, h, _ in dead} == {"permanent"}
    assert {UsageEvent.from_bytes(data).id for _, _, data in dead} == {too_big.id, nul.id}
    total = await ledger.fetch("SELECT sum(cost_usd) FROM ledger.user_daily_totals")
    assert total[0][0] == Decimal(4)


async def dlq_entries(ledger: Any, expected: int) -> list[tuple[str, dict[str, str], bytes]]:
    found: list[tuple[str, dict[str, str], bytes]] = []

    async def collect() -> bool:
        sub = await ledger.bus.js.pull_subscribe("dlq.>", stream="DLQ")
        try:
            found[:] = [(m.subject, dict(m.headers or {}), m.data) for m in await sub.fetch(100, timeout=0.5)]
        except TimeoutError:
            found[:] = []
        finally:
            await sub.unsubscribe()
        return len(found) >= expected

    await ledger.wait_until(collect)
    return found


async def stream_messages(ledger: Any, count: int) -> list[Any]:
    """The first `count` USAGE messages, through a consumer of the test's own."""
    sub = await ledger.bus.js.pull_subscribe("usage.llm.>", stream="USAGE")
    try:
        msgs: list[Any] = []
        while len(msgs) < count:
            msgs += await sub.fetch(count - len(msgs), timeout=5)
        return msgs
    finally:
        await sub.unsubscribe()
