"""Degraded agents, planning failure, deadlines and retries, duplicates, bad commands."""

from __future__ import annotations

import pytest
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus

from .conftest import Harness, result_for

pytestmark = pytest.mark.integration


async def test_failing_agent_is_retried_then_degrades_its_section_and_plan_ends_partial(
    harness: Harness,
) -> None:
    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.agent is AgentName.WEATHER:
            return [result_for(job, ok=False, error="provider down", error_kind="llm_error")]
        return [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.PARTIAL, PlanStatus.COMPLETED, PlanStatus.FAILED)
    assert view.status is PlanStatus.PARTIAL
    assert view.status_reason == "degraded sections: weather"
    assert view.plan_data["sections"]["weather"] == {"status": "degraded", "reason": "provider down"}
    assert view.plan_data["sections"]["location"]["status"] == "ok"
    assert len(view.plan_data["itinerary"]) == 4
    weather_jobs = harness.agents.jobs_of(cmd.plan_id, AgentName.WEATHER)
    assert [j.attempt for j in weather_jobs] == [1, 2]  # default retry budget: 2 attempts
    assert view.agent_results["weather"]["attempt"] == 2
    # options were built without the degraded weather output
    assert "weather" not in harness.agents.jobs_of(cmd.plan_id, AgentName.TRANSPORT)[0].context
    events = await harness.events(cmd)
    failed = [e for e in events if e.kind is EventKind.AGENT_FAILED]
    assert [e.agent for e in failed] == [AgentName.WEATHER]
    assert events[-1].kind is EventKind.PARTIAL


async def test_planning_failure_fails_the_plan(harness: Harness) -> None:
    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.agent is AgentName.PLANNING:
            return [result_for(job, ok=False, error="no itinerary", error_kind="invalid_output")]
        return [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.FAILED, PlanStatus.COMPLETED, PlanStatus.PARTIAL)
    assert view.status is PlanStatus.FAILED
    assert view.status_reason == "planning agent failed: no itinerary"
    assert view.plan_data["itinerary"] == []
    events = await harness.events(cmd)
    assert events[-1].kind is EventKind.FAILED and events[-1].message == view.status_reason
    changed = await harness.changed(cmd.plan_id)
    assert changed is not None and changed.snapshot is not None
    assert changed.snapshot.status is PlanStatus.FAILED


async def test_silent_agent_is_retried_at_its_deadline_then_degraded(harness: Harness) -> None:
    await harness.planner.stop()
    harness.services.clear()
    await harness.start_planner(agent_deadlines={"activity": 1.0})

    async def respond(job: AgentJob) -> list[AgentResult]:
        return [] if job.agent is AgentName.ACTIVITY else [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.PARTIAL, PlanStatus.COMPLETED, PlanStatus.FAILED)
    assert view.status is PlanStatus.PARTIAL
    assert view.plan_data["sections"]["activity"]["status"] == "degraded"
    assert "deadline" in view.plan_data["sections"]["activity"]["reason"]
    activity = harness.agents.jobs_of(cmd.plan_id, AgentName.ACTIVITY)
    assert sorted(j.attempt for j in activity) == [1, 2]
    assert len({j.id for j in activity}) == 2


async def test_duplicate_and_late_results_change_nothing_twice(harness: Harness) -> None:
    first_jobs: list[AgentJob] = []

    async def respond(job: AgentJob) -> list[AgentResult]:
        first_jobs.append(job)
        one, two = result_for(job), result_for(job)  # two deliveries with different message ids
        return [one, two, one]

    harness.agents.respond = respond
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert view.status is PlanStatus.COMPLETED
    # a result arriving after everything is done, with another output, is ignored
    late = result_for(first_jobs[0], ok=False, error="late")
    await harness.agents.publish(late)
    # and a result for a job nobody asked for
    stray = result_for(first_jobs[0]).model_copy(update={"job_id": new_id(), "id": new_id()})
    await harness.agents.publish(stray)
    await harness.results_drained()

    view = await harness.view(cmd.user_id, cmd.plan_id)
    assert view is not None and view.status is PlanStatus.COMPLETED and view.version == 1
    events = await harness.events(cmd)
    completed = [e for e in events if e.kind is EventKind.AGENT_COMPLETED]
    assert len(completed) == len(AgentName) and len({e.agent for e in completed}) == len(AgentName)
    assert [e.kind for e in events].count(EventKind.COMPLETED) == 1
    assert len(harness.agents.jobs_of(cmd.plan_id)) == len(AgentName)


async def test_unknown_command_type_goes_to_the_dlq(harness: Harness) -> None:
    sub = await harness.js.subscribe("dlq.plans.cmd.>", stream="DLQ", ordered_consumer=True)
    marker = new_id()
    payload = f'{{"type": "plan.teleport.v1", "id": "{marker}", "user_id": "u1", "plan_id": "p1"}}'
    await harness.js.publish(subjects.PLAN_CMD_CREATE, payload.encode(), headers={"Nats-Msg-Id": marker})
    while True:
        msg = await sub.next_msg(timeout=30)
        if marker.encode() in msg.data:
            break
    assert msg.headers is not None and msg.headers["Tripmesh-Dlq-Error-Kind"] == "permanent"
    assert "unknown plan command type" in msg.headers["Tripmesh-Dlq-Error"]
    await sub.unsubscribe()
