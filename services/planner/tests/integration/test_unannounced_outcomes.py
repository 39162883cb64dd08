"""An outcome stored by a replica that died before announcing it is announced before the plan
moves on - never after the terminal event - and exactly once.

Found by the e2e SIGKILL test: planner 0 stored the planning result and was killed; the other
replica's sweeper finished the plan; the redelivered result was then announced after
`completed`, so the plan's event stream no longer ended with its terminal event.
"""

from __future__ import annotations

from collections import Counter

import pytest
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus

from .conftest import Harness, result_for, wait_for

pytestmark = pytest.mark.integration


async def test_an_outcome_stored_but_not_announced_is_announced_before_the_plan_ends(
    harness: Harness,
) -> None:
    held: list[AgentJob] = []

    async def respond(job: AgentJob) -> list[AgentResult]:
        if job.agent is AgentName.PLANNING:
            held.append(job)
            return []
        return [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()

    async def planning_out() -> bool:
        return bool(held)

    await wait_for(planning_out, "planning job out")
    # "The replica that takes the result dies after storing it": stored, never announced.
    await harness.planner.stop()
    harness.services.clear()
    dying = await harness.start_planner(consume=False, sweep=False)
    result = result_for(held[0])
    settings = dying.settings
    applied = await dying.executions.apply_result(result, settings.attempts_for, settings.deadline_for)
    assert applied.kind == "completed"
    await dying.stop()
    harness.services.clear()

    await harness.start_planner()  # its sweeper finds the stalled plan and finishes it
    await harness.wait_status(cmd, PlanStatus.COMPLETED)
    await harness.agents.publish(result)  # JetStream redelivers the dead replica's message
    await harness.results_drained()

    events = await harness.events(cmd)
    kinds = [e.kind for e in events]
    planning_done = [
        i
        for i, e in enumerate(events)
        if e.kind is EventKind.AGENT_COMPLETED and e.agent is AgentName.PLANNING
    ]
    assert len(planning_done) == 1, kinds
    assert planning_done[0] < kinds.index(EventKind.COMPLETED), kinds
    assert kinds[-1] is EventKind.COMPLETED, kinds
    assert Counter(kinds)[EventKind.AGENT_COMPLETED] == len(AgentName)


async def test_agent_started_is_announced_before_a_fast_agents_result(harness: Harness) -> None:
    """A job's result can be stored and announced before the publishing step is over (the
    agent is fast); `agent_started` must still come first in the plan's events."""
    executions = harness.planner.executions
    mark_published = executions.mark_published

    async def after_the_result_was_announced(job_ids: list[str]) -> None:
        async def announced() -> bool:
            rows = [await executions.get(job_id) for job_id in job_ids]
            return all(row is not None and row["announced_at"] is not None for row in rows)

        await wait_for(announced, f"results of {job_ids} announced")
        await mark_published(job_ids)

    executions.mark_published = after_the_result_was_announced  # type: ignore[method-assign]
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.COMPLETED)

    events = await harness.events(cmd)
    order = [
        (e.kind, e.data["job_id"])
        for e in events
        if e.kind in (EventKind.AGENT_STARTED, EventKind.AGENT_COMPLETED)
    ]
    for job_id in {job for _, job in order}:
        assert [k for k, j in order if j == job_id] == [EventKind.AGENT_STARTED, EventKind.AGENT_COMPLETED]
    assert len(order) == 2 * len(AgentName)
