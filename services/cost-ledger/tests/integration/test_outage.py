"""Postgres goes away while usage flows: nothing lost, nothing dead-lettered, caught up after.

Uses a private Postgres (§9: tests that stop a server start their own). The issue's 30 s
outage under load runs in the reliability battery against the whole stack
(tests/chaos/test_postgres_down.py, as ARCHITECTURE §9 folds fault tests into it); here the
outage is 12 s, still longer than a batch waits for a connection (5 s), so the in-process
oracles (readiness, budget checks answering 503, no redelivery, outage retries, exact daily
totals) see a batch fail and be retried through it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from tripmesh_contracts import UsageEvent, streams, subjects
from tripmesh_contracts.rpc import BudgetCheckReply, BudgetCheckRequest
from tripmesh_contracts.streams import ConsumerSpec
from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.domain import UsageRow, aggregate
from tripmesh_cost_ledger.ingest import BatchIngestor
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_kit import metrics as kit_metrics
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.pg import make_pool

pytestmark = pytest.mark.integration

MakeUsage = Callable[..., UsageEvent]
OUTAGE_SECONDS = 12.0
"""Postgres stopped while usage keeps arriving (the battery's test 3 holds the issue's 30 s)."""


async def dlq_count(bus: Bus) -> int:
    return int((await bus.js.stream_info(streams.DLQ.name)).state.messages)


async def test_postgres_outage_pauses_ingest_and_it_catches_up(
    ledger_nats_url: str, stoppable_postgres: Any, start_ledger: Any, make_usage: MakeUsage
) -> None:
    events = [make_usage(f"user-{i % 4}", plan_id=f"plan-{i % 6}", cost="0.001") for i in range(700)]
    async with start_ledger(ledger_nats_url, stoppable_postgres.url) as ledger:

        async def publish_steadily() -> None:
            for i, event in enumerate(events):
                await ledger.publish(event)
                if i % 20 == 0:
                    await asyncio.sleep(0.4)  # ~14 s of traffic (50 events/s), through the outage

        publisher = asyncio.create_task(publish_steadily())
        await ledger.wait_until(lambda: _has_events(ledger))
        retries_before = kit_metrics.STORE_OUTAGE_RETRIES._value.get()
        redelivered_before = redelivered()
        await asyncio.to_thread(stoppable_postgres.stop)
        stopped_at = time.monotonic()
        try:
            # while it is down: readiness names postgres, budget checks answer 503
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=ledger.app), base_url="http://ledger"
            ) as http:
                ready = await http.get("/readyz")
            assert ready.status_code == 503 and "postgres" in ready.json()["dependencies"]
            reply = await ledger.ask(
                subjects.SVC_LEDGER_BUDGET_CHECK, BudgetCheckRequest(user_id="user-0"), BudgetCheckReply
            )
            assert reply.error is not None and reply.error.status == 503
            await publisher  # every event is published while the database is down
            # down for longer than a batch waits for a connection (5 s), so the batch's
            # insert fails and is retried through the outage
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        finally:
            await asyncio.to_thread(stoppable_postgres.start)

        await ledger.wait_until(lambda: ledger.caught_up(), timeout=120)
        assert await ledger.count_events() == len(events)  # 0 lost
        assert await dlq_count(ledger.bus) == 0  # 0 dead-lettered
        _, daily, _ = await ledger.state()
        expected = aggregate(UsageRow.from_event(e) for e in events)
        assert [(u, d, n, c) for u, d, n, _, _, c in daily] == [
            (u, d, t.calls, t.cost_usd) for (u, d), t in sorted(expected.daily.items())
        ]
        assert redelivered() == redelivered_before  # paused: not nak'ed, not timed out
        assert kit_metrics.STORE_OUTAGE_RETRIES._value.get() > retries_before


def redelivered() -> float:
    """Deliveries > 1 the ledger's consumer has seen (ConsumerInfo.num_redelivered only
    counts the ones not yet acked)."""
    counter = kit_metrics.MESSAGES_REDELIVERED.labels(consumer=streams.LEDGER_USAGE.durable)
    return float(counter._value.get())


async def _has_events(ledger: Any) -> bool:
    try:
        return bool(await ledger.count_events())
    except Exception:
        return False


async def test_a_batch_waiting_out_an_outage_keeps_its_messages(
    ledger_nats_url: str, stoppable_postgres: Any, make_usage: MakeUsage
) -> None:
    """An outage longer than AckWait: in-progress acks keep the batch from being redelivered
    to another replica. The ingestor alone here (no live service consuming beside it)."""
    spec = ConsumerSpec(
        stream=streams.USAGE.name,
        durable="ledger-outage-test",
        filter_subject=subjects.USAGE_ALL,
        ack_wait_seconds=3.0,
    )
    await migrate(stoppable_postgres.url)
    pool = make_pool(stoppable_postgres.url, name="outage-test")
    broker = make_broker(ledger_nats_url, "outage-test")
    await pool.open()
    await broker.connect()
    bus = Bus(broker)
    ingest: asyncio.Task[None] | None = None
    try:
        js = bus.js
        await provision(js, consumers=[spec])
        for event in [make_usage("outage-user", cost="0.1") for _ in range(20)]:
            await bus.publish(event, subjects.usage(event.user_id))
        store = LedgerStore(pool)
        ingestor = BatchIngestor(store, bus, spec=spec)
        await asyncio.to_thread(stoppable_postgres.stop)
        sub = await js.pull_subscribe_bind(consumer=spec.durable, stream=spec.stream)
        batch = await sub.fetch(20, timeout=5)
        ingest = asyncio.create_task(ingestor.handle(batch))
        # well past AckWait, still down: a second replica pulling meanwhile gets nothing
        other_replica = await js.pull_subscribe_bind(consumer=spec.durable, stream=spec.stream)
        with pytest.raises(TimeoutError):
            await other_replica.fetch(20, timeout=3 * spec.ack_wait_seconds)
        await other_replica.unsubscribe()
        assert not ingest.done()
        await asyncio.to_thread(stoppable_postgres.start)
        await asyncio.wait_for(ingest, timeout=120)

        await bus.nc.flush()  # the acks are fire-and-forget publishes
        info = await js.consumer_info(spec.stream, spec.durable)
        assert info.num_ack_pending == 0 and info.delivered.stream_seq == 20
        assert (ingestor.stats.ingested, ingestor.stats.rejected) == (20, 0)
        assert await store.count_events() == 20
        assert await dlq_count(bus) == 0
    finally:
        if ingest is not None and not ingest.done():
            ingest.cancel()
        if not await _reachable(stoppable_postgres.url):
            await asyncio.to_thread(stoppable_postgres.start)
        await broker.stop()
        await pool.close()


async def _reachable(url: str) -> bool:
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
