"""The plan's LLM spend cap: every job carries it to the runners (which reserve against it in
the ledger), and an agent the ledger stopped (`budget_exhausted`) ends the plan partial with
a reason that says so."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob, AgentResult, PlanCreate
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus
from tripmesh_planner import engine

from .conftest import Harness, plan_request, result_for

pytestmark = pytest.mark.integration


async def create(harness: Harness, plan_budget_usd: Decimal | None) -> PlanCreate:
    cmd = PlanCreate(
        user_id=new_id(), plan_id=new_id(), request=plan_request(), plan_budget_usd=plan_budget_usd
    )
    harness.agents.plans.add(cmd.plan_id)
    await harness.send(cmd, subjects.PLAN_CMD_CREATE)
    return cmd


async def test_every_job_carries_the_plans_llm_cap(harness: Harness) -> None:
    capped = await create(harness, Decimal("0.35"))
    default = await create(harness, None)
    for cmd in (capped, default):
        view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
        assert view.status is PlanStatus.COMPLETED
    capped_jobs = harness.agents.jobs_of(capped.plan_id)
    assert {j.agent for j in capped_jobs} == set(AgentName)
    assert {j.llm_cap_usd for j in capped_jobs} == {Decimal("0.35")}
    assert {j.llm_cap_usd for j in harness.agents.jobs_of(default.plan_id)} == {None}


async def test_a_budget_exhausted_agent_degrades_its_section_and_the_plan_ends_partial(
    harness: Harness,
) -> None:
    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.agent is AgentName.ACTIVITY:
            return [result_for(job, ok=False, error="plan_cap_reached", error_kind="budget_exhausted")]
        return [result_for(job)]

    harness.agents.respond = respond
    cmd = await create(harness, Decimal("0.01"))
    view = await harness.wait_status(cmd, PlanStatus.PARTIAL, PlanStatus.COMPLETED, PlanStatus.FAILED)
    assert view.status is PlanStatus.PARTIAL
    assert view.status_reason is not None and view.status_reason.startswith("LLM budget exhausted")
    assert view.plan_data["sections"]["activity"] == {
        "status": "degraded",
        "reason": "budget_exhausted",
        "detail": "plan_cap_reached",
    }
    assert len(view.plan_data["itinerary"]) == 4
    # another attempt cannot fix a spent budget: not retried
    assert [j.attempt for j in harness.agents.jobs_of(cmd.plan_id, AgentName.ACTIVITY)] == [1]
    assert view.agent_results["activity"]["error_kind"] == "budget_exhausted"
    events = await harness.events(cmd)
    failed = [e for e in events if e.kind is EventKind.AGENT_FAILED]
    assert [(e.agent, e.data["reason"], e.data["detail"]) for e in failed] == [
        (AgentName.ACTIVITY, "budget_exhausted", "plan_cap_reached")
    ]
    last = events[-1]
    assert last.kind is EventKind.PARTIAL and last.message == view.status_reason
    assert last.data["reason"] == "budget_exhausted" and last.data["budget_exhausted"] == ["activity"]


async def test_a_run_checkpointed_without_the_cap_still_finishes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started by a planner from before `llm_cap_usd` (its checkpointed state has no
    such key) finishes after the upgrade; its jobs carry no cap (the ledger's default)."""
    real = engine.initial_state

    def as_before(*args: Any) -> dict[str, Any]:
        state = real(*args)
        state.pop("llm_cap_usd")
        return state

    monkeypatch.setattr(engine, "initial_state", as_before)
    cmd = await create(harness, Decimal("0.5"))
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert view.status is PlanStatus.COMPLETED
    assert {j.llm_cap_usd for j in harness.agents.jobs_of(cmd.plan_id)} == {None}
