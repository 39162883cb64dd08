"""A call's settle runs beside the job: the next call (or the result) does not wait for the
ledger's reply, and `settled` waits for every settle under way (JobRunner.run_job calls it
after the result is published, before the ack)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tripmesh_agent_runner.agents.outcome import LlmCallRecord
from tripmesh_agent_runner.domain import Delivery
from tripmesh_agent_runner.usage import UsagePublisher, settled
from tripmesh_contracts import AgentJob, AgentName

JobFactory = Callable[..., AgentJob]


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[Any, str]] = []

    async def publish(self, message: Any, subject: str) -> None:
        self.published.append((message, subject))


class SlowLedgerReserver:
    """Settles answer only when the test lets them (`release`); one of them fails."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.settled: list[int] = []

    def reservation_of(self, call_index: int) -> str:
        return f"r-{call_index}"

    async def settle(self, *, job: Any, call_index: int, actual_usd: Decimal, usage_event_id: str) -> None:
        await self.release.wait()
        if call_index == 2:
            raise RuntimeError("ledger said something odd")
        self.settled.append(call_index)


def record(call_index: int) -> LlmCallRecord:
    return LlmCallRecord(
        model="local/stub", provider="local", prompt_tokens=10, completion_tokens=5,
        cost_usd=Decimal("0.0001"), latency_ms=3, turn=call_index, attempt=1, call_index=call_index,
    )  # fmt: skip


async def test_calls_do_not_wait_for_their_settles_and_settled_waits_for_all(make_job: JobFactory) -> None:
    bus, reserver = RecordingBus(), SlowLedgerReserver()
    settles: set[asyncio.Task[None]] = set()
    observer = UsagePublisher(bus, Delivery(stream_seq=1, delivered=1), reserver, settles)  # type: ignore[arg-type]
    job = make_job(AgentName.WEATHER)

    for index in (1, 2, 3):
        # returns with the ledger not answering: the usage event is out, the settle pending
        await asyncio.wait_for(observer.after_llm_call(job=job, record=record(index)), 1)
    assert len(bus.published) == 3 and reserver.settled == []
    assert len(settles) == 3 and not any(t.done() for t in settles)

    waiting = asyncio.create_task(settled(settles))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "settled() returned before the ledger answered"
    reserver.release.set()
    await asyncio.wait_for(waiting, 1)  # the failed one is logged, not raised
    assert sorted(reserver.settled) == [1, 3] and settles == set()
