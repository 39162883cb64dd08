"""Budget enforcement against real NATS: the runner reserves each LLM call's maximum through
`svc.ledger.reserve` before making it and settles the actual cost after (ARCHITECTURE.md §5).

The ledger here is a fake of the other service: a responder on the test's NATS that grants
a scripted number of reservations and denies the rest (or answers errors, or nothing). The
LLM is the OpenAI-compatible stub, whose call log says which calls were really made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.msg import Msg
from openai_stub import OpenAiStub
from runner_support import publish_job, runner_settings
from tripmesh_agent_runner.app import create_app
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName, PlanRequest
from tripmesh_contracts.rpc import ReserveReply, ReserveRequest, RpcError, SettleReply, SettleRequest
from tripmesh_kit.bus import Bus

pytestmark = pytest.mark.integration

STUB_MODEL = "openai/stub"
"""Unknown to litellm's price map: reserved and charged at the fallback price, never 0."""


class FakeLedger:
    """Answers svc.ledger.reserve / settle like the ledger would, from a script:
    `decide` grants the first `grants` reservations and denies the rest (idempotent by
    reservation id), `error` answers 503, `silent` never answers."""

    def __init__(self, bus: Bus, grants: int = 1_000_000, mode: str = "decide") -> None:
        self.bus, self.grants, self.mode = bus, grants, mode
        self.reserves: list[ReserveRequest] = []
        """Every reserve request received, repeats included."""
        self.decisions: dict[str, ReserveReply] = {}
        self.settles: list[SettleRequest] = []
        self._subs: list[Any] = []

    async def __aenter__(self) -> FakeLedger:
        self._subs = [
            await self.bus.nc.subscribe(subjects.SVC_LEDGER_RESERVE, cb=self._on_reserve),
            await self.bus.nc.subscribe(subjects.SVC_LEDGER_SETTLE, cb=self._on_settle),
        ]
        await self.bus.nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    @property
    def granted(self) -> list[str]:
        return [rid for rid, reply in self.decisions.items() if reply.granted]

    @property
    def denied(self) -> list[str]:
        return [rid for rid, reply in self.decisions.items() if not reply.granted]

    async def asked_in_two_deliveries(self) -> bool:
        """A redelivered job asks under new reservation ids."""
        return len({r.reservation_id for r in self.reserves}) >= 2

    async def _on_reserve(self, msg: Msg) -> None:
        request = ReserveRequest.model_validate_json(msg.data)
        self.reserves.append(request)
        if self.mode == "silent":
            return
        if self.mode == "error":
            await msg.respond(ReserveReply(error=RpcError(status=503, title="store unavailable")).to_bytes())
            return
        rid = request.reservation_id
        if rid not in self.decisions:
            grant = len(self.granted) < self.grants
            self.decisions[rid] = ReserveReply(granted=grant, reason=None if grant else "plan_cap_reached")
        await msg.respond(self.decisions[rid].to_bytes())

    async def _on_settle(self, msg: Msg) -> None:
        request = SettleRequest.model_validate_json(msg.data)
        self.settles.append(request)
        if self.mode == "silent":
            return
        await msg.respond(SettleReply(settled=True, state="settled").to_bytes())


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenAiStub]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    async with OpenAiStub(hang_seconds=30) as server:
        yield server


def enforced(nats_url: str, stub: OpenAiStub, agent: AgentName, **extra: Any) -> Any:
    """The runner serving `agent` on the stub, budgets enforced, short ledger budget."""
    overrides = {agent.value: {"model": STUB_MODEL, "api_base": stub.url, "num_retries": 2}}
    settings = runner_settings(
        nats_url, [agent], agent_overrides=overrides, budget_enforced=True, ledger_timeout_seconds=0.5,
        ledger_attempts=2, retry_backoff_seconds=0.05, **extra,
    )  # fmt: skip
    return create_app(settings)


async def test_every_call_runs_under_a_reservation_settled_at_its_usage_cost(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    stub.inject("500", agent="weather")  # a failed attempt is reserved and settled too (at 0)
    app = enforced(nats_url, stub, AgentName.WEATHER)
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id, llm_cap_usd=Decimal("0.25"))
    async with FakeLedger(bus) as ledger, app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert result.ok, (result.error_kind, result.error)
    usage = await stream_reader.usage(user_id)
    calls = stub.calls_of("weather")
    assert [c.answer for c in calls][:2] == ["500", "ok"] and len(usage) == len(calls) >= 3
    # one reservation per call, asked before it, for the job's user, plan and plan cap
    assert len(ledger.granted) == len(calls) and not ledger.denied
    for request in ledger.reserves:
        assert (request.user_id, request.plan_id, request.agent) == (user_id, plan_id, "weather")
        assert request.plan_cap_usd == Decimal("0.25") and request.model == STUB_MODEL
        assert request.amount_usd > 0 and request.ttl_seconds > 0
    amounts = {r.reservation_id: r.amount_usd for r in ledger.reserves}
    # every usage event names its reservation, and that reservation was settled at its cost
    settled = {s.reservation_id: s for s in ledger.settles}
    assert sorted(u.reservation_id or "" for u in usage) == sorted(ledger.granted) == sorted(settled)
    for event in usage:
        settle = settled[event.reservation_id or ""]
        assert settle.actual_usd == event.cost_usd and settle.usage_event_id == event.id
        assert settle.user_id == user_id
        assert event.cost_usd <= amounts[event.reservation_id or ""]  # the maximum was a maximum
    assert min(usage, key=lambda u: u.occurred_at).cost_usd == 0  # the 500
    # each request carried its reservation id: the provider's log names what the ledger holds
    assert sorted(c.usage_id or "" for c in calls) == sorted(ledger.granted)


async def test_the_reservation_header_can_be_turned_off(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    app = enforced(nats_url, stub, AgentName.WEATHER, call_ref_header="")
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id, llm_cap_usd=Decimal("0.25"))
    async with FakeLedger(bus) as ledger, app.router.lifespan_context(app):
        await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
    calls = stub.calls_of("weather")
    assert result.ok and calls and len(ledger.granted) == len(calls)
    assert [c.usage_id for c in calls] == [None] * len(calls)


async def test_a_denied_reservation_ends_the_agent_budget_exhausted_without_calling_the_llm(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    app = enforced(nats_url, stub, AgentName.WEATHER)
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    async with FakeLedger(bus, grants=1) as ledger, app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        # a decision, not a failure: the job is acked, never redelivered
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert not result.ok and result.error_kind == "budget_exhausted", result
    assert "plan_cap_reached" in (result.error or "")
    # the weather agent needs two calls (tools, then the answer): the first ran, the second
    # was denied before it was made
    assert len(ledger.granted) == 1 and len(ledger.denied) == 1
    assert len(stub.calls_of("weather")) == 1
    usage = await stream_reader.usage(user_id)
    assert [u.reservation_id for u in usage] == ledger.granted
    assert [(s.reservation_id, s.actual_usd) for s in ledger.settles] == [
        (usage[0].reservation_id, usage[0].cost_usd)
    ]
    assert usage[0].cost_usd > 0 and result.cost_usd == usage[0].cost_usd
    assert await stream_reader.count(streams.AGENT_RESULTS.name, subjects.agent_result(plan_id)) == 1


async def test_a_ledger_outage_holds_the_job_in_its_delivery_until_the_ledger_is_back(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    """Regression (issue #12, full-tier Postgres down, 2026-12-04): a job failed its delivery
    on every reserve the ledger could not decide, so 150 s of ledger outage used up its 5
    deliveries and dead-lettered it. Now it waits in the same delivery, under the same id."""
    app = enforced(nats_url, stub, AgentName.WEATHER, ledger_outage_wait_seconds=120)
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)

    async def asked_four_times() -> bool:
        return len(ledger.reserves) >= 4  # two rounds of the client's 2 tries, 1 s apart

    async with FakeLedger(bus, mode="error") as ledger, app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        await stream_reader.until(asked_four_times)
        assert len({r.reservation_id for r in ledger.reserves}) == 1  # one delivery, one call
        assert not stub.calls and await stream_reader.results(plan_id) == []
        ledger.mode = "decide"
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert result.ok, (result.error_kind, result.error)
    # the id held through the outage was granted, and no second delivery made calls of its own
    assert ledger.reserves[0].reservation_id in ledger.granted
    assert len(stub.calls_of("weather")) == len(ledger.granted) == len(set(ledger.decisions)) >= 2


async def test_a_ledger_answering_errors_fails_the_delivery_not_the_agent(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    app = enforced(nats_url, stub, AgentName.WEATHER, ledger_outage_wait_seconds=0)
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    async with FakeLedger(bus, mode="error") as ledger, app.router.lifespan_context(app):
        seq = await publish_job(bus, job)

        await stream_reader.until(ledger.asked_in_two_deliveries)
        # within one delivery the reserve was asked again with the same id (stamina)
        first = ledger.reserves[0].reservation_id
        assert sum(r.reservation_id == first for r in ledger.reserves) == 2
        assert not stub.calls and await stream_reader.job_still_queued(seq)
        assert await stream_reader.results(plan_id) == []  # never reported budget_exhausted
        assert await stream_reader.usage(user_id) == []
        ledger.mode = "decide"  # the ledger is back: the next delivery runs the job
        result = (await stream_reader.wait_job_results(plan_id, [job.id]))[job.id]
        await stream_reader.until(lambda: stream_reader.job_acked(seq))
    assert result.ok, (result.error_kind, result.error)
    assert len(stub.calls_of("weather")) == len(ledger.granted) >= 2


async def test_a_ledger_that_does_not_answer_fails_the_delivery_and_no_llm_call_is_made(
    nats_url: str, bus: Bus, stream_reader: Any, trip: PlanRequest, new_job: Callable[..., AgentJob],
    stub: OpenAiStub,
) -> None:  # fmt: skip
    app = enforced(nats_url, stub, AgentName.WEATHER, ledger_outage_wait_seconds=0)
    user_id, plan_id = f"u-{new_id()}", new_id()
    job = new_job(AgentName.WEATHER, trip, user_id=user_id, plan_id=plan_id)
    async with FakeLedger(bus, mode="silent") as ledger, app.router.lifespan_context(app):
        seq = await publish_job(bus, job)
        await stream_reader.until(ledger.asked_in_two_deliveries)
        assert not stub.calls and await stream_reader.job_still_queued(seq)
        assert await stream_reader.results(plan_id) == [] and await stream_reader.usage(user_id) == []
    # a timed-out reserve may have been granted with the reply lost: the runner asked to release it
    assert ledger.settles and all(s.actual_usd == 0 for s in ledger.settles)
    assert {s.reservation_id for s in ledger.settles} <= {r.reservation_id for r in ledger.reserves}
    await bus.js.delete_msg(streams.AGENT_JOBS.name, seq)  # nobody else may run it later
