"""The ingest's fast decode path agrees with pydantic (the authority) on every message.

Two properties (hypothesis):
- a usage event as the runner serialises it takes the fast path, and gives exactly the row
  that pydantic + `UsageRow.from_event` give;
- any mutation of such a message (a field removed, or replaced by an odd value) either takes
  the fast path with pydantic's row, or is handed to pydantic (None): the fast path never
  accepts what pydantic refuses, and never builds a different row.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tripmesh_contracts import UsageEvent
from tripmesh_contracts.plans import AgentName
from tripmesh_cost_ledger.domain import DECODE_ERRORS, UsageRow, decode_usage
from tripmesh_cost_ledger.fastdecode import row_from_json

TOKENS = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
TEXT = st.text(max_size=40)
MONEY = st.decimals(min_value=0, max_value=Decimal("99999"), places=10, allow_nan=False, allow_infinity=False)
WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 1, 1)).map(
    lambda d: d.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
)

EVENTS = st.builds(
    UsageEvent,
    id=TOKENS,
    user_id=TOKENS,
    plan_id=st.none() | TOKENS,
    correlation_id=TOKENS,
    occurred_at=WHEN,
    job_id=st.none() | TOKENS,
    run_id=st.none() | TOKENS,
    version=st.none() | st.integers(-5, 10**6),
    agent=st.none() | st.sampled_from(list(AgentName)),
    model=TEXT,
    provider=TEXT,
    prompt_tokens=st.integers(0, 10**9),
    completion_tokens=st.integers(0, 10**9),
    cost_usd=MONEY,
    latency_ms=st.integers(0, 10**7),
    attempt=st.integers(1, 9),
    cache_hit=st.booleans(),
    success=st.booleans(),
    error=st.none() | TEXT,
    reservation_id=st.none() | TOKENS,
    estimated=st.booleans(),
)

ODD = [
    None,
    "",
    "5",
    "1e3",
    "-1",
    "0.1",
    "true",
    1.5,
    -1,
    0,
    True,
    False,
    [],
    {},
    "a.b",
    "a b",
    "*",
    ">",
    "é",
    "2026-11-04T14:47:51",
    "2026-11-04 14:47:51Z",
    "2026-02-30T10:00:00Z",
    "2026-11-04T14:47:51.1234567Z",
    "usage.llm.v2",
    "weather",
    "x" * 65,
    10**30,
]
ODD_VALUES = st.sampled_from(ODD)
FIELDS = sorted(UsageEvent.model_fields)
BASE_EVENT = UsageEvent(
    user_id="u-1",
    plan_id="p-1",
    job_id="j-1",
    run_id="r-1",
    version=2,
    agent=AgentName.WEATHER,
    model="gpt-5-mini",
    provider="openai",
    prompt_tokens=900,
    completion_tokens=120,
    cost_usd=Decimal("0.000465"),
    latency_ms=812,
    reservation_id="res-1",
)


REMOVE = object()


def pydantic_row(data: bytes) -> UsageRow | None:
    try:
        return UsageRow.from_event(decode_usage(data))
    except DECODE_ERRORS:
        return None


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_the_runners_messages_take_the_fast_path_with_pydantics_row(event: UsageEvent) -> None:
    data = event.to_bytes()
    fast = row_from_json(data)
    assert fast is not None, data
    assert fast == pydantic_row(data)


@settings(max_examples=600, deadline=None)
@given(
    EVENTS, st.lists(st.tuples(st.sampled_from(FIELDS), st.booleans(), ODD_VALUES), min_size=1, max_size=3)
)
def test_a_mutated_message_is_never_accepted_differently(
    event: UsageEvent, mutations: list[tuple[str, bool, Any]]
) -> None:
    doc = json.loads(event.to_bytes())
    for field, remove, value in mutations:
        if remove:
            doc.pop(field, None)
        else:
            doc[field] = value
    data = json.dumps(doc).encode()
    fast = row_from_json(data)
    if fast is not None:
        assert fast == pydantic_row(data), (doc, fast)


@pytest.mark.parametrize("field", FIELDS)
def test_every_single_field_change_is_accepted_only_as_pydantic_accepts_it(field: str) -> None:
    """Exhaustive over one event: the field removed, or set to each odd value in turn."""
    taken = 0
    for change in [REMOVE, *ODD]:
        doc = json.loads(BASE_EVENT.to_bytes())
        if change is REMOVE:
            doc.pop(field)
        else:
            doc[field] = change
        data = json.dumps(doc).encode()
        fast = row_from_json(data)
        if fast is not None:
            taken += 1
            assert fast == pydantic_row(data), (field, change, fast)
    assert taken < len(ODD) + 1, f"{field}: the fast path took every odd value"


@given(st.binary(max_size=200))
def test_garbage_goes_to_pydantic(data: bytes) -> None:
    assert row_from_json(data) is None or row_from_json(data) == pydantic_row(data)


def test_the_fast_path_knows_every_field_of_the_contract() -> None:
    """A field added to UsageEvent must be taught to fastdecode (and to UsageRow) first."""
    known = {"id", "type", "occurred_at", "user_id", "plan_id", "correlation_id", "job_id", "run_id"}
    known |= {"version", "agent", "model", "provider", "prompt_tokens", "completion_tokens", "cost_usd"}
    known |= {"latency_ms", "attempt", "cache_hit", "success", "error", "reservation_id", "estimated"}
    assert set(UsageEvent.model_fields) == known
