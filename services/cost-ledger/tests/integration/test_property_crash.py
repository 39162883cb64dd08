"""Crashes, redeliveries and replays through real JetStream and real Postgres (bounded examples).

tests/unit/test_aggregation.py checks the aggregation rule on a model and
test_property_db.py calls `LedgerStore.ingest` directly with repeated batches. This test
drives the consumer path instead - `BatchIngestor` on a pull subscription to the durable, as
`UsagePuller` does - through random sequences of:

- publish new events (with `Nats-Msg-Id`), or publish some again: with the same msg id (the
  server drops it) or with a new one (a replay after the duplicate window: a second copy);
- consume a batch normally (commit, then ack);
- crash before the commit: the batch is fetched and dropped, nothing acked;
- crash after the commit (before the acks): committed, no ack reaches the server;
- crash mid-acks: committed, only the first half acked;
- restart: a new subscription and ingestor on the same durable (unacked messages return
  after AckWait, shortened here to 0.5 s);
- rebuild: the operator's truncate-and-replay of the whole stream (`rebuild.rebuild`).

After every step the ledger holds exactly the events whose batch committed (rows, and every
per-user-day and per-plan total equal to the exact Decimal sum of those events); after a
final drain, exactly the distinct published events. Breaking the insert's idempotency (ON
CONFLICT returning the existing rows) makes it fail on the first redelivery after a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tripmesh_contracts import UsageEvent, streams, subjects
from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.ingest import BatchIngestor
from tripmesh_cost_ledger.rebuild import rebuild
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_kit.pg import make_pool

pytestmark = pytest.mark.integration

BASE = datetime(2026, 5, 31, 21, 0, tzinfo=UTC)
SPEC = streams.LEDGER_USAGE.model_copy(update={"ack_wait_seconds": 0.5, "max_deliver": -1})
MODES = ("ack", "crash_before_commit", "crash_after_commit", "crash_mid_acks")

events = st.builds(
    lambda user, plan, cost, minutes, tokens: UsageEvent(
        user_id=user,
        plan_id=plan,
        agent="planning",
        model="m",
        provider="p",
        prompt_tokens=tokens,
        completion_tokens=tokens // 2,
        cost_usd=cost,
        occurred_at=BASE + timedelta(minutes=minutes),
    ),
    st.sampled_from(["ana", "bob", "cleo"]),
    st.sampled_from([None, "p1", "p2", "p3"]),
    st.decimals(min_value=0, max_value=20, places=10),  # the ledger keeps 8 places
    st.integers(0, 6 * 60),  # across midnight UTC
    st.integers(0, 4000),
)
steps = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 6)),
    st.tuples(st.just("republish"), st.lists(st.integers(0, 50), min_size=1, max_size=4), st.booleans()),
    st.tuples(st.just("consume"), st.integers(1, 8), st.sampled_from(MODES)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("rebuild")),
)


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)


async def _no_ack(*_: Any, **__: Any) -> None:
    """The process died before this ack left it."""


class Harness:
    """One 'process' of the ledger's consumer over a durable, plus the model of what the
    ledger must hold: the events whose batch committed."""

    def __init__(self, nats_url: str, db_url: str, bus: Bus, store: LedgerStore) -> None:
        self.nats_url, self.db_url = nats_url, db_url
        self.bus, self.store = bus, store
        self.js: JetStreamContext = bus.js
        self.events: list[UsageEvent] = []
        self.published = 0
        self.replays = 0
        self.committed: set[str] = set()
        self.sub: JetStreamContext.PullSubscription | None = None
        self.ingestor = BatchIngestor(store, bus, spec=SPEC)

    async def restart(self) -> None:
        if self.sub is not None:
            await self.sub.unsubscribe()
        self.sub = await self.js.pull_subscribe_bind(durable=SPEC.durable, stream=SPEC.stream)
        self.ingestor = BatchIngestor(self.store, self.bus, spec=SPEC)

    async def publish(self, count: int) -> None:
        for event in self.events[self.published : self.published + count]:
            await self.bus.publish(event, subjects.usage(event.user_id))
        self.published = min(len(self.events), self.published + count)

    async def republish(self, picks: Sequence[int], new_msg_id: bool) -> None:
        for i in picks:
            if self.published == 0:
                return
            event = self.events[i % self.published]
            self.replays += 1
            msg_id = f"{event.id}-replay-{self.replays}" if new_msg_id else event.id
            await self.bus.publish_raw(event.to_bytes(), subjects.usage(event.user_id), msg_id=msg_id)

    async def consume(self, size: int, mode: str) -> None:
        assert self.sub is not None
        try:
            msgs = await self.sub.fetch(size, timeout=0.2)
        except TimeoutError:
            return
        if mode == "crash_before_commit":
            return  # never committed, never acked: AckWait redelivers
        if mode == "crash_after_commit":
            self._lose_acks(msgs)
        elif mode == "crash_mid_acks":
            self._lose_acks(msgs[len(msgs) // 2 :])
        await self.ingestor.handle(msgs)
        self.committed |= {UsageEvent.model_validate_json(m.data).id for m in msgs}

    @staticmethod
    def _lose_acks(msgs: Sequence[Msg]) -> None:
        for m in msgs:
            setattr(m, "ack", _no_ack)  # noqa: B010 - a method replaced on this instance only

    async def rebuild(self) -> None:
        await rebuild(self.db_url, self.nats_url, batch_size=7)
        self.committed = {e.id for e in self.events[: self.published]}

    async def drain(self) -> None:
        """Publish the rest and consume normally until the durable has nothing left."""
        await self.publish(len(self.events))
        deadline = time.monotonic() + 60  # liveness bound
        while True:
            info = await self.js.consumer_info(SPEC.stream, SPEC.durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            assert time.monotonic() < deadline, f"the durable never drained: {info}"
            await self.consume(20, "ack")

    async def check(self) -> None:
        """The ledger = the committed events: rows and every total, exactly."""
        by_id = {e.id: e for e in self.events}
        daily: dict[tuple[str, date], list[Any]] = {}
        plans: dict[tuple[str, str], list[Any]] = {}
        for event_id in self.committed:
            e = by_id[event_id]
            cost = money(e.cost_usd)
            d = daily.setdefault((e.user_id, e.occurred_at.date()), [0, 0, 0, Decimal(0)])
            d[0] += 1
            d[1] += e.prompt_tokens
            d[2] += e.completion_tokens
            d[3] += cost
            if e.plan_id is not None:
                p = plans.setdefault((e.user_id, e.plan_id), [0, Decimal(0), e.occurred_at, e.occurred_at])
                p[0] += 1
                p[1] += cost
                p[2], p[3] = min(p[2], e.occurred_at), max(p[3], e.occurred_at)
        async with self.store.pool.connection() as conn:
            rows = await (await conn.execute("SELECT event_id FROM ledger.usage_events")).fetchall()
            got_daily = await (
                await conn.execute(
                    "SELECT user_id, day, calls, prompt_tokens, completion_tokens, cost_usd"
                    " FROM ledger.user_daily_totals"
                )
            ).fetchall()
            got_plans = await (
                await conn.execute(
                    "SELECT user_id, plan_id, calls, cost_usd, first_at, last_at FROM ledger.plan_totals"
                )
            ).fetchall()
        assert {r[0] for r in rows} == self.committed
        assert len(rows) == len(self.committed)
        assert {(r[0], r[1]): list(r[2:]) for r in got_daily} == daily
        assert {(r[0], r[1]): list(r[2:]) for r in got_plans} == plans


async def _fresh_stream(js: JetStreamContext) -> None:
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(streams.USAGE.name)
    await provision(js, [streams.USAGE, streams.DLQ], [SPEC])


async def _run(nats_url: str, db_url: str, evs: list[UsageEvent], ops: list[tuple[Any, ...]]) -> None:
    broker = make_broker(nats_url, "property-crash")
    await broker.connect()
    pool = make_pool(db_url, name="property-crash", max_size=2)
    await pool.open()
    try:
        bus = Bus(broker)
        await _fresh_stream(bus.js)
        store = LedgerStore(pool)
        await store.truncate_derived()
        h = Harness(nats_url, db_url, bus, store)
        # ids by position: an example replays identically (hypothesis shrinks by replaying)
        h.events = [e.model_copy(update={"id": f"e{i}"}) for i, e in enumerate(evs)]
        await h.restart()
        for op in ops:
            if op[0] == "publish":
                await h.publish(op[1])
            elif op[0] == "republish":
                await h.republish(op[1], op[2])
            elif op[0] == "consume":
                await h.consume(op[1], op[2])
            elif op[0] == "restart":
                await h.restart()
            else:
                await h.rebuild()
            await h.check()
        await h.drain()
        assert h.committed == {e.id for e in h.events}  # nothing lost
        await h.check()
        if h.sub is not None:
            await h.sub.unsubscribe()
    finally:
        await pool.close()
        await broker.stop()


def test_crash_and_replay_sequences_leave_exactly_the_distinct_events(
    ledger_nats_url: str, ledger_db_url: str
) -> None:
    asyncio.run(migrate(ledger_db_url))

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(events, min_size=1, max_size=14), st.lists(steps, min_size=1, max_size=14))
    def check(evs: list[UsageEvent], ops: list[tuple[Any, ...]]) -> None:
        asyncio.run(_run(ledger_nats_url, ledger_db_url, evs, ops))

    check()
