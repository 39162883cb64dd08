"""Property: any sequence of deliveries, redeliveries and replays ends with the totals of the
distinct events - given the store's rule "aggregate only the rows the insert added".

The ledger here is a model of `LedgerStore.ingest` in plain Python (a set standing in for
the primary key, `Aggregates.merge` for the `+ EXCLUDED` upserts); the real store is checked
against the same property in tests/integration/test_property_db.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from tripmesh_contracts import UsageEvent
from tripmesh_cost_ledger.domain import Aggregates, UsageRow, aggregate, unique_in_order

BASE = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)


@st.composite
def usage_events(draw: st.DrawFn) -> UsageEvent:
    return UsageEvent(
        id=f"e{draw(st.integers(0, 10_000))}",
        user_id=draw(st.sampled_from(["ana", "bob", "carol"])),
        plan_id=draw(st.sampled_from([None, "p1", "p2", "p3"])),
        agent=draw(st.sampled_from([None, "planning", "weather"])),
        model="m",
        provider="p",
        prompt_tokens=draw(st.integers(0, 5000)),
        completion_tokens=draw(st.integers(0, 5000)),
        # up to 10 decimal places: the ledger rounds to 8, before adding anything
        cost_usd=draw(st.decimals(min_value=0, max_value=50, places=10)),
        occurred_at=BASE + timedelta(minutes=draw(st.integers(0, 6 * 60))),
    )


class ModelLedger:
    """LedgerStore.ingest's rule: totals grow only by the rows the insert added."""

    def __init__(self) -> None:
        self.stored: dict[str, UsageRow] = {}
        self.totals = Aggregates()

    def ingest(self, batch: list[UsageRow]) -> int:
        added = [r for r in unique_in_order(batch) if r.event_id not in self.stored]
        self.stored.update((r.event_id, r) for r in added)
        self.totals.merge(aggregate(added))
        return len(added)


def deliveries(events: list[UsageEvent]) -> st.SearchStrategy[list[list[UsageEvent]]]:
    """Batches drawn from the events: every event at least once, some many times over."""
    idx = st.integers(0, len(events) - 1)
    extra = st.lists(st.lists(idx, max_size=8), max_size=6)
    return extra.map(lambda batches: _with_everything(events, batches))


def _with_everything(events: list[UsageEvent], extra: list[list[int]]) -> list[list[UsageEvent]]:
    return [events[:3], *[[events[i] for i in b] for b in extra], events[3:], events]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(usage_events(), min_size=1, max_size=25).flatmap(
        lambda evs: st.tuples(st.just(evs), deliveries(evs))
    )
)
def test_any_delivery_sequence_gives_the_totals_of_distinct_events(
    case: tuple[list[UsageEvent], list[list[UsageEvent]]],
) -> None:
    events, batches = case
    ledger = ModelLedger()
    for batch in batches:
        ledger.ingest([UsageRow.from_event(e) for e in batch])

    first_copy = {}
    for batch in batches:  # the first copy of an id to arrive is the one kept
        for e in batch:
            first_copy.setdefault(e.id, e)
    expected = aggregate(UsageRow.from_event(e) for e in first_copy.values())
    assert ledger.totals == expected
    assert set(ledger.stored) == {e.id for e in events}  # nothing lost either
    total = sum((t.cost_usd for t in ledger.totals.daily.values()), Decimal(0))
    assert total == sum((r.cost_usd for r in ledger.stored.values()), Decimal(0))


@settings(max_examples=200, deadline=None)
@given(st.lists(usage_events(), max_size=30), st.integers(0, 30))
def test_aggregate_is_additive_over_disjoint_parts(events: list[UsageEvent], cut: int) -> None:
    rows = unique_in_order(UsageRow.from_event(e) for e in events)
    parts = Aggregates()
    parts.merge(aggregate(rows[cut:]))
    parts.merge(aggregate(rows[:cut]))
    assert parts == aggregate(rows)


def test_a_redelivered_batch_adds_nothing() -> None:
    rows = [
        UsageRow.from_event(
            UsageEvent(id=f"e{i}", user_id="ana", model="m", provider="p", cost_usd=Decimal("0.1"))
        )
        for i in range(10)
    ]
    ledger = ModelLedger()
    assert ledger.ingest(rows) == 10
    snapshot = Aggregates()
    snapshot.merge(ledger.totals)
    assert ledger.ingest(rows + rows) == 0
    assert ledger.totals == snapshot
    assert sum(t.cost_usd for t in ledger.totals.daily.values()) == Decimal(1)
