"""A cancel (or delete) marks the run in the `plan-status` KV bucket, for the agent-runners to
skip the jobs of that run that are still queued."""

from __future__ import annotations

import pytest
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import (
    AgentJob,
    AgentResult,
    MultitaskStrategy,
    PlanCancel,
    PlanDelete,
    PlanRevise,
)
from tripmesh_contracts.plans import PlanStatus, Stage
from tripmesh_planner.plan_status import plan_status_key

from .conftest import Harness, plan_request, result_for, wait_for

pytestmark = pytest.mark.integration


async def status_of(harness: Harness, plan_id: str, run_id: str) -> str | None:
    try:
        kv = await harness.js.key_value(harness.settings.plan_status_bucket)
        entry = await kv.get(plan_status_key(plan_id, run_id))
    except (BucketNotFoundError, KeyNotFoundError):
        return None
    return (entry.value or b"").decode()


async def test_cancel_marks_the_running_run_cancelled(harness: Harness) -> None:
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
    run_id = held[0].run_id
    assert await status_of(harness, cmd.plan_id, run_id) is None  # running: nothing to skip
    await harness.send(PlanCancel(user_id=cmd.user_id, plan_id=cmd.plan_id), subjects.PLAN_CMD_CANCEL)
    await harness.wait_status(cmd, PlanStatus.CANCELLED)
    assert await status_of(harness, cmd.plan_id, run_id) == "cancelled"


async def test_delete_marks_the_run_deleted_and_another_users_cancel_marks_nothing(harness: Harness) -> None:
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED)
    run_id = harness.agents.jobs_of(cmd.plan_id)[0].run_id
    await harness.send(PlanCancel(user_id="someone-else", plan_id=cmd.plan_id), subjects.PLAN_CMD_CANCEL)
    await harness.commands_drained()
    assert await status_of(harness, cmd.plan_id, run_id) is None
    await harness.send(PlanDelete(user_id=cmd.user_id, plan_id=cmd.plan_id), subjects.PLAN_CMD_DELETE)
    await harness.commands_drained()
    assert await status_of(harness, cmd.plan_id, run_id) == "deleted"
    assert view.version == 1


async def test_an_interrupting_revision_marks_only_the_interrupted_run(harness: Harness) -> None:
    async def respond(job: AgentJob) -> list[AgentResult]:
        return [] if job.version == 1 and job.stage is Stage.OPTIONS else [result_for(job)]

    harness.agents.respond = respond
    cmd = await harness.create()

    async def options_sent() -> bool:
        return len(harness.agents.jobs_of(cmd.plan_id)) >= 5

    await wait_for(options_sent, "options jobs out")
    first_run = harness.agents.jobs_of(cmd.plan_id)[0].run_id
    revise = PlanRevise(user_id=cmd.user_id, plan_id=cmd.plan_id, request=plan_request(),
                        multitask_strategy=MultitaskStrategy.INTERRUPT)  # fmt: skip
    await harness.send(revise, subjects.PLAN_CMD_REVISE)

    async def version_2_done() -> bool:
        view = await harness.view(cmd.user_id, cmd.plan_id)
        return view is not None and view.version == 2 and view.status is PlanStatus.COMPLETED

    await wait_for(version_2_done, "interrupting revision completed")
    second_run = next(j.run_id for j in harness.agents.jobs_of(cmd.plan_id) if j.version == 2)
    assert await status_of(harness, cmd.plan_id, first_run) == "cancelled"
    assert await status_of(harness, cmd.plan_id, second_run) is None
