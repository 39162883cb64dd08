"""Budget loop, approval (approve / reject), cancel mid-run, revise and delete."""

from __future__ import annotations

import asyncio

import pytest
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import (
    AgentJob,
    AgentResult,
    MultitaskStrategy,
    PlanCancel,
    PlanDecide,
    PlanDelete,
    PlanRevise,
)
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus, Stage
from tripmesh_contracts.rpc import PlanVersionsRequest

from .conftest import Harness, fake_output, plan_request, result_for, wait_for

pytestmark = pytest.mark.integration


def over_budget_until(round_within: int | None):  # type: ignore[no-untyped-def]
    """Budget agent: over budget before `round_within` (never within when None)."""

    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.agent is AgentName.BUDGET:
            within = round_within is not None and job.round >= round_within
            return [result_for(job, output={"within_budget": within, "overrun": 0 if within else 420.0})]
        return [result_for(job)]

    return respond


async def test_over_budget_loops_back_to_options_with_tighter_constraints(harness: Harness) -> None:
    harness.agents.respond = over_budget_until(1)
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert view.status is PlanStatus.COMPLETED
    options = harness.agents.jobs_of(cmd.plan_id, AgentName.ACCOMMODATION)
    assert [j.round for j in options] == [0, 1]
    assert options[0].constraints == {}
    assert options[1].constraints["tier"] == "budget" and options[1].constraints["max_paid_activities"] == 1
    assert options[1].constraints["reduce_by"] == 420.0
    assert [j.round for j in harness.agents.jobs_of(cmd.plan_id, AgentName.BUDGET)] == [0, 1]
    assert view.plan_data["budget"]["within_budget"] is True
    stages = [
        (e.stage, e.data.get("round")) for e in await harness.events(cmd) if e.kind is EventKind.STAGE_STARTED
    ]
    assert stages == [
        (Stage.INTAKE, None),
        (Stage.RESEARCH, 0),
        (Stage.OPTIONS, 0),
        (Stage.BUDGET, 0),
        (Stage.OPTIONS, 1),
        (Stage.BUDGET, 1),
        (Stage.PLANNING, 1),
    ]


async def test_still_over_budget_waits_for_approval_then_approve_completes(harness: Harness) -> None:
    harness.agents.respond = over_budget_until(None)
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.AWAITING_APPROVAL, PlanStatus.COMPLETED)
    assert view.status is PlanStatus.AWAITING_APPROVAL
    assert view.status_reason is not None and view.status_reason.startswith("over budget by 420.00 USD")
    assert [j.round for j in harness.agents.jobs_of(cmd.plan_id, AgentName.BUDGET)] == [0, 1, 2]
    assert harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING) == []
    events = await harness.events(cmd)
    assert events[-1].kind is EventKind.APPROVAL_REQUIRED and events[-1].data["overrun"] == 420.0

    decide = PlanDecide(user_id=cmd.user_id, plan_id=cmd.plan_id, approve=True)
    await harness.send(decide, subjects.PLAN_CMD_DECIDE)
    await harness.send(decide, subjects.PLAN_CMD_DECIDE)  # deduplicated by the stream
    await harness.send(
        decide.model_copy(update={"id": "another-delivery", "approve": False}), subjects.PLAN_CMD_DECIDE
    )  # a second answer does not overturn the first
    view = await harness.wait_status(
        cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED, PlanStatus.CANCELLED
    )
    assert view.status is PlanStatus.COMPLETED and view.status_reason is None
    assert view.plan_data["budget"]["accepted_overrun"] is True
    planning = harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING)
    assert len(planning) == 1 and planning[0].context["budget_overrun_accepted"] is True
    kinds = [e.kind for e in await harness.events(cmd)]
    assert kinds.count(EventKind.DECISION_RECORDED) == 1
    assert kinds.index(EventKind.APPROVAL_REQUIRED) < kinds.index(EventKind.DECISION_RECORDED)


async def test_rejecting_the_overrun_cancels_the_plan(harness: Harness) -> None:
    harness.agents.respond = over_budget_until(None)
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.AWAITING_APPROVAL)
    await harness.send(
        PlanDecide(user_id=cmd.user_id, plan_id=cmd.plan_id, approve=False), subjects.PLAN_CMD_DECIDE
    )
    view = await harness.wait_status(cmd, PlanStatus.CANCELLED, PlanStatus.COMPLETED)
    assert view.status is PlanStatus.CANCELLED and view.status_reason == "budget overrun rejected"
    events = await harness.events(cmd)
    assert events[-1].kind is EventKind.CANCELLED
    assert harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING) == []


async def test_cancel_mid_run_skips_pending_jobs_and_ignores_late_results(harness: Harness) -> None:
    held: list[AgentJob] = []

    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.stage is Stage.OPTIONS:
            held.append(job)
            return []
        return [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()

    async def options_out() -> bool:
        return len(held) == 3

    await wait_for(options_out, "options jobs published")
    await harness.send(
        PlanCancel(user_id=cmd.user_id, plan_id=cmd.plan_id, reason="changed my mind"),
        subjects.PLAN_CMD_CANCEL,
    )
    view = await harness.wait_status(cmd, PlanStatus.CANCELLED)
    assert view.status_reason == "changed my mind"
    for job in held:  # the runners answer after all
        await harness.agents.publish(result_for(job))
    await asyncio.sleep(0.5)
    view = await harness.wait_status(cmd, PlanStatus.CANCELLED)
    assert view.version == 1
    events = await harness.events(cmd)
    assert events[-1].kind is EventKind.CANCELLED
    assert not [e for e in events if e.kind is EventKind.AGENT_COMPLETED and e.stage is Stage.OPTIONS]
    assert harness.agents.jobs_of(cmd.plan_id, AgentName.BUDGET) == []


async def test_revision_creates_version_2_with_parent_1_and_feedback(harness: Harness) -> None:
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.COMPLETED)
    revise = PlanRevise(
        user_id=cmd.user_id,
        plan_id=cmd.plan_id,
        feedback="fewer museums",
        request=plan_request(title="Portugal, slower"),
    )
    await harness.send(revise, subjects.PLAN_CMD_REVISE)

    async def version_2_done() -> bool:
        view = await harness.view(cmd.user_id, cmd.plan_id)
        return view is not None and view.version == 2 and view.status is PlanStatus.COMPLETED

    await wait_for(version_2_done, "version 2 completed")
    reply = await harness.planner.reads.versions(
        PlanVersionsRequest(user_id=cmd.user_id, plan_id=cmd.plan_id)
    )
    assert [(v.version, v.parent_version) for v in reply.items] == [(2, 1), (1, None)]
    assert reply.items[0].feedback == "fewer museums"
    assert reply.items[0].request["title"] == "Portugal, slower"
    second_run = [j for j in harness.agents.jobs_of(cmd.plan_id) if j.version == 2]
    assert len(second_run) == len(AgentName)
    assert all(j.context.get("feedback") == "fewer museums" for j in second_run)
    changed = await harness.changed(cmd.plan_id)
    assert changed is not None and changed.version == 2


async def test_revision_without_feedback_reuses_unchanged_research(harness: Harness) -> None:
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.COMPLETED)
    revise = PlanRevise(user_id=cmd.user_id, plan_id=cmd.plan_id, request=plan_request(budget_total=900))
    await harness.send(revise, subjects.PLAN_CMD_REVISE)

    async def version_2_done() -> bool:
        view = await harness.view(cmd.user_id, cmd.plan_id)
        return view is not None and view.version == 2 and view.status is PlanStatus.COMPLETED

    await wait_for(version_2_done, "version 2 completed")
    view = await harness.view(cmd.user_id, cmd.plan_id)
    assert view is not None and view.plan_data["sections"]["location"]["status"] == "ok"
    assert view.agent_results["location"]["model"].startswith("reused:")
    second_run = {j.agent for j in harness.agents.jobs_of(cmd.plan_id) if j.version == 2}
    assert second_run == {
        AgentName.TRANSPORT,
        AgentName.ACCOMMODATION,
        AgentName.ACTIVITY,
        AgentName.BUDGET,
        AgentName.PLANNING,
    }
    transport = next(j for j in harness.agents.jobs_of(cmd.plan_id, AgentName.TRANSPORT) if j.version == 2)
    assert set(transport.context) == {"location", "weather"}  # fed with the reused outputs


async def test_revision_while_running_is_rejected_or_queued(harness: Harness) -> None:
    gate = asyncio.Event()

    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.version == 1 and job.agent is AgentName.PLANNING:
            await gate.wait()
        return [result_for(job, output=fake_output(job))]

    harness.agents.respond = respond
    cmd = await harness.create()

    async def planning_sent() -> bool:
        return bool(harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING))

    await wait_for(planning_sent, "planning job out")
    rejected = PlanRevise(user_id=cmd.user_id, plan_id=cmd.plan_id, request=plan_request(title="rejected"))
    queued = PlanRevise(
        user_id=cmd.user_id,
        plan_id=cmd.plan_id,
        request=plan_request(title="queued"),
        multitask_strategy=MultitaskStrategy.ENQUEUE,
    )
    await harness.send(rejected, subjects.PLAN_CMD_REVISE)
    await harness.send(queued, subjects.PLAN_CMD_REVISE)
    await asyncio.sleep(0.5)
    gate.set()

    async def version_2_done() -> bool:
        view = await harness.view(cmd.user_id, cmd.plan_id)
        return view is not None and view.version == 2 and view.status is PlanStatus.COMPLETED

    await wait_for(version_2_done, "queued revision completed")
    reply = await harness.planner.reads.versions(
        PlanVersionsRequest(user_id=cmd.user_id, plan_id=cmd.plan_id)
    )
    assert [(v.version, v.status, v.request["title"]) for v in reply.items] == [
        (2, PlanStatus.COMPLETED, "queued"),
        (1, PlanStatus.COMPLETED, "Portugal in spring"),
    ]


async def test_interrupting_revision_cancels_the_running_version(harness: Harness) -> None:
    async def respond(job: AgentJob) -> list[AgentResult]:
        return [] if job.version == 1 and job.stage is Stage.OPTIONS else [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()

    async def options_sent() -> bool:
        return len(harness.agents.jobs_of(cmd.plan_id)) >= 5

    await wait_for(options_sent, "options jobs out")
    await harness.send(
        PlanRevise(
            user_id=cmd.user_id,
            plan_id=cmd.plan_id,
            request=plan_request(),
            multitask_strategy=MultitaskStrategy.INTERRUPT,
        ),
        subjects.PLAN_CMD_REVISE,
    )

    async def version_2_done() -> bool:
        view = await harness.view(cmd.user_id, cmd.plan_id)
        return view is not None and view.version == 2 and view.status is PlanStatus.COMPLETED

    await wait_for(version_2_done, "interrupting revision completed")
    reply = await harness.planner.reads.versions(
        PlanVersionsRequest(user_id=cmd.user_id, plan_id=cmd.plan_id)
    )
    assert [(v.version, v.status) for v in reply.items] == [
        (2, PlanStatus.COMPLETED),
        (1, PlanStatus.CANCELLED),
    ]


async def test_delete_hides_the_plan_and_announces_it(harness: Harness) -> None:
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.COMPLETED)
    await harness.send(PlanDelete(user_id="not-the-owner", plan_id=cmd.plan_id), subjects.PLAN_CMD_DELETE)
    await harness.commands_drained()
    assert await harness.view(cmd.user_id, cmd.plan_id) is not None
    assert await harness.changed(cmd.plan_id) is not None and not (await harness.changed(cmd.plan_id)).deleted
    await harness.send(PlanDelete(user_id=cmd.user_id, plan_id=cmd.plan_id), subjects.PLAN_CMD_DELETE)

    async def gone() -> bool:
        return await harness.view(cmd.user_id, cmd.plan_id) is None

    await wait_for(gone, "plan deleted")
    changed = await harness.changed(cmd.plan_id)
    assert changed is not None and changed.deleted and changed.version == 1
