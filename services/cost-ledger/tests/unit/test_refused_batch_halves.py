"""A batch the database refuses because of one bad row is isolated in halves (issue #12,
test 4, poison).

Before: the batch fell back to one transaction per message, so one refused event in a
batch of 1,000 cost 1,000 transactions and the valid events of that batch waited for them
(the chaos poison test measured valid p99 0.27 s -> 2.1-7.2 s with 1 refused event per 500).
Now the batch is split in halves while refused: here 1,000 messages with one bad row take at
most 2 log2(1,000) + 2 = 22 ingest calls, every valid row is ingested once and acked, and the
bad one goes to the DLQ as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
from tripmesh_contracts.messages import UsageEvent
from tripmesh_cost_ledger.domain import UsageRow
from tripmesh_cost_ledger.ingest import BatchIngestor
from tripmesh_cost_ledger.store import IngestResult


class RefusingStore:
    """Refuses (like Postgres) any batch holding a row whose model has a NUL byte."""

    def __init__(self) -> None:
        self.calls = 0
        self.stored: list[str] = []

    async def ingest(self, rows: Sequence[UsageRow]) -> IngestResult:
        self.calls += 1
        if any("\x00" in row.model for row in rows):
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        self.stored.extend(row.event_id for row in rows)
        return IngestResult(inserted=list(rows), duplicates=0)


class FakeMsg:
    def __init__(self, data: bytes, seq: int) -> None:
        self.data = data
        self.subject = "usage.llm.u1"
        self.headers: dict[str, str] = {}
        self.reply = f"$JS.ACK.USAGE.cost-ledger-usage.1.{seq}.{seq}.0.0"
        self.metadata = SimpleNamespace(stream="USAGE", sequence=SimpleNamespace(stream=seq), num_delivered=1)
        self.acked = 0

    async def ack(self) -> None:
        self.acked += 1

    async def in_progress(self) -> None:
        pass


class FakeBus:
    def __init__(self) -> None:
        self.dead: list[str] = []

    async def publish_raw(self, data: bytes, subject: str, **kw: Any) -> None:
        self.dead.append(subject)


def event(n: int, model: str = "stub") -> bytes:
    return (
        UsageEvent(
            user_id="u1",
            agent="weather",
            model=model,
            provider="local",
            cost_usd=Decimal("0.001"),
            prompt_tokens=n,
        )
        .model_dump_json()
        .encode()
    )


async def test_one_refused_row_is_isolated_in_halves() -> None:
    store, bus = RefusingStore(), FakeBus()
    msgs = [FakeMsg(event(n, "bad\x00" if n == 617 else "stub"), n + 1) for n in range(1000)]
    ingestor = BatchIngestor(store, bus)  # type: ignore[arg-type]
    await ingestor.handle(msgs)  # type: ignore[arg-type]
    assert store.calls <= 2 * math.ceil(math.log2(1000)) + 2, store.calls
    assert len(store.stored) == len(set(store.stored)) == 999
    assert all(m.acked == 1 for m in msgs)
    assert bus.dead == ["dlq.usage.llm.u1"]
