"""Reserver asks a ledger that cannot decide again, with the same reservation id, for up to
its outage wait (budget.py), so a ledger outage holds the job instead of failing its
delivery. A fake ledger stands in for the LedgerClient: pure logic, no NATS."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from tripmesh_agent_runner.budget import OUTAGE_RETRY_MAX_SECONDS, PriceBook, Reserver
from tripmesh_agent_runner.domain import Delivery
from tripmesh_agent_runner.ledger_client import LedgerClient, LedgerUnavailable
from tripmesh_agent_runner.llm.base import ModelPrice
from tripmesh_contracts import AgentJob, AgentName
from tripmesh_contracts.rpc import ReserveReply, ReserveRequest, SettleReply, SettleRequest

JobFactory = Callable[..., AgentJob]
PRICE = ModelPrice(Decimal("0.001"), Decimal("0.002"))


class FlakyLedger:
    """Cannot decide `failures` times (each a LedgerUnavailable of `reason`), then grants."""

    def __init__(self, failures: int, reason: str = "timeout", retryable: bool = True) -> None:
        self.failures, self.reason, self.retryable = failures, reason, retryable
        self.reserves: list[ReserveRequest] = []
        self.settles: list[SettleRequest] = []

    async def reserve(self, request: ReserveRequest) -> ReserveReply:
        self.reserves.append(request)
        if len(self.reserves) <= self.failures:
            raise LedgerUnavailable("svc.ledger.reserve", self.reason, retryable=self.retryable)
        return ReserveReply(granted=True)

    async def settle(self, request: SettleRequest, *, attempts: int | None = None) -> SettleReply:
        self.settles.append(request)
        return SettleReply(settled=True, state="settled")


def reserver(ledger: FlakyLedger, wait: float, slept: list[float]) -> Reserver:
    """`slept` records each pause; the clock moves only by them (the ledger answers at once)."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return Reserver(
        ledger=cast(LedgerClient, ledger),
        prices=PriceBook(PRICE),
        fallback_price=PRICE,
        ttl_seconds=60,
        delivery=Delivery(stream_seq=7, delivered=1),
        outage_wait_seconds=wait,
        sleep=sleep,
        clock=lambda: sum(slept),
    )


@pytest.fixture
def agent_job(make_job: JobFactory) -> AgentJob:
    return make_job(AgentName.WEATHER)


async def reserve(r: Reserver, job: AgentJob) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "a trip"}]
    return await r.reserve(
        job=job, model="local/stub", call_index=0, messages=messages, tools=None, max_tokens=100
    )


async def test_an_outage_is_waited_out_under_one_reservation_id(agent_job: AgentJob) -> None:
    ledger, slept = FlakyLedger(failures=6), []
    rid = await reserve(reserver(ledger, wait=600, slept=slept), agent_job)
    assert len(ledger.reserves) == 7 and {r.reservation_id for r in ledger.reserves} == {rid}
    assert slept == [1.0, 2.0, 4.0, 8.0, OUTAGE_RETRY_MAX_SECONDS, OUTAGE_RETRY_MAX_SECONDS]
    assert ledger.settles == []  # nothing released: the same id was granted in the end


async def test_past_the_wait_the_delivery_fails_and_a_timed_out_grant_is_released(
    agent_job: AgentJob,
) -> None:
    ledger, slept = FlakyLedger(failures=100), []
    with pytest.raises(LedgerUnavailable):
        await reserve(reserver(ledger, wait=10, slept=slept), agent_job)
    assert slept == [1.0, 2.0, 4.0]  # 7 s waited; the next 8 s pause would pass the 10 s wait
    assert [s.actual_usd for s in ledger.settles] == [0]
    assert ledger.settles[0].reservation_id == ledger.reserves[0].reservation_id


async def test_no_wait_or_an_error_retrying_cannot_fix_fails_at_once(agent_job: AgentJob) -> None:
    for ledger, wait in (
        (FlakyLedger(failures=1), 0.0),
        (FlakyLedger(failures=1, reason="error_422", retryable=False), 600.0),
    ):
        slept: list[float] = []
        with pytest.raises(LedgerUnavailable):
            await reserve(reserver(ledger, wait=wait, slept=slept), agent_job)
        assert len(ledger.reserves) == 1 and slept == []
