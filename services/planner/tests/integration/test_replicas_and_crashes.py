"""Two planner replicas on one database and bus; crashes between a write and a publish."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus, Stage
from tripmesh_planner.app import PlannerService

from .conftest import Harness, result_for, wait_for

pytestmark = pytest.mark.integration


def count_calls(obj: Any, name: str, counter: Counter[str], label: str) -> None:
    """Spy: count calls of a bound coroutine method (the real method still runs)."""
    original = getattr(obj, name)

    async def spy(*args: Any, **kwargs: Any) -> Any:
        counter[label] += 1
        return await original(*args, **kwargs)

    setattr(obj, name, spy)


async def forked_threads(svc: PlannerService, plan_id: str) -> list[tuple[str, int]]:
    """Checkpoints that share a parent: what two uncoordinated resumes would leave behind."""
    async with svc.checkpoint_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT thread_id, count(*) AS n FROM checkpoints WHERE thread_id LIKE %s"
            " AND checkpoint_ns = '' GROUP BY thread_id, parent_checkpoint_id HAVING count(*) > 1",
            (f"{plan_id}:%",),
        )
        return [(r["thread_id"], r["n"]) for r in await cur.fetchall()]


async def test_two_replicas_with_results_arriving_together_lose_nothing_and_fork_nothing(
    harness: Harness,
) -> None:
    second = await harness.start_planner()
    handled: Counter[str] = Counter()
    for label, svc in (("a", harness.planner), ("b", second)):
        count_calls(svc.running.results, "handle", handled, label)

    # Hold each stage round's results until all its jobs are out, then send them all at
    # once, twice: the replicas race to apply them and to resume the same plan.
    rounds: dict[tuple[str, str, int], list[AgentJob]] = defaultdict(list)
    stage_size = {Stage.RESEARCH: 2, Stage.OPTIONS: 3, Stage.BUDGET: 1, Stage.PLANNING: 1}

    async def respond(job: AgentJob) -> list[AgentResult]:
        key = (job.plan_id, job.stage.value, job.round)
        rounds[key].append(job)
        if len(rounds[key]) < stage_size[job.stage]:
            return []
        batch = [result_for(j) for j in rounds[key]]
        return batch + [r.model_copy(update={"id": r.id[:-4] + "dup0"}) for r in batch]

    harness.agents.respond = respond
    cmds = [await harness.create() for _ in range(6)]
    for cmd in cmds:
        view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
        assert view.status is PlanStatus.COMPLETED and view.version == 1

    assert handled["a"] > 0 and handled["b"] > 0, handled  # both replicas took part
    for cmd in cmds:
        jobs = harness.agents.jobs_of(cmd.plan_id)
        assert sorted(j.agent.value for j in jobs) == sorted(a.value for a in AgentName)
        events = await harness.events(cmd)
        kinds = Counter(e.kind for e in events)
        assert kinds[EventKind.STAGE_STARTED] == 5 and kinds[EventKind.COMPLETED] == 1
        assert kinds[EventKind.AGENT_COMPLETED] == len(AgentName)
        assert await forked_threads(harness.planner, cmd.plan_id) == []
        async with harness.planner.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM planner.plan_versions WHERE plan_id = %s", (cmd.plan_id,)
            )
            assert (await cur.fetchone()) == (1,)


async def test_another_replica_finishes_a_plan_whose_replica_went_away(harness: Harness) -> None:
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

    await wait_for(options_out, "options jobs out")
    await harness.planner.stop()
    harness.services.clear()
    await harness.start_planner()
    for job in held:
        await harness.agents.publish(result_for(job))
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert view.status is PlanStatus.COMPLETED


async def test_publish_failure_after_the_version_write_is_repaired_on_redelivery(harness: Harness) -> None:
    bus = harness.planner.bus
    original = bus.publish
    failures: list[str] = []

    async def flaky_publish(msg: Any, subject: str, headers: dict[str, str] | None = None) -> Any:
        if subject.startswith("plans.changed.") and not failures:
            failures.append(subject)  # "the process died" right after the version was stored
            raise RuntimeError("simulated crash before plans.changed")
        return await original(msg, subject, headers)

    bus.publish = flaky_publish  # type: ignore[method-assign]
    cmd = await harness.create()

    async def changed_published() -> bool:
        return await harness.changed(cmd.plan_id) is not None

    await wait_for(changed_published, "plans.changed published after the redelivery")
    assert failures, "the failure was never injected"
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED)
    assert view.version == 1
    kinds = Counter(e.kind for e in await harness.events(cmd))
    assert kinds[EventKind.COMPLETED] == 1 and kinds[EventKind.VERSION_CREATED] == 1


async def test_sweeper_repairs_a_lost_publish_when_no_message_is_left_to_redeliver(
    harness: Harness,
) -> None:
    """The planning result is applied outside any bus delivery, by a replica that consumes
    nothing and has no sweeper, and its `plans.changed` publish fails: no message is left to
    redeliver, so only another replica's sweeper can finish the run."""
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
    await harness.planner.stop()
    harness.services.clear()
    svc = await harness.start_planner(consume=False, sweep=False)
    original = svc.bus.publish
    failures: list[str] = []

    async def flaky_publish(msg: Any, subject: str, headers: dict[str, str] | None = None) -> Any:
        if subject.startswith("plans.changed.") and not failures:
            failures.append(subject)
            raise RuntimeError("simulated crash before plans.changed")
        return await original(msg, subject, headers)

    svc.bus.publish = flaky_publish  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="simulated crash"):
        await svc.running.results.handle(result_for(held[0]))
    view = await harness.view(cmd.user_id, cmd.plan_id)
    assert view is not None and view.status is PlanStatus.COMPLETED  # version stored...
    assert await harness.changed(cmd.plan_id) is None  # ...but not announced
    await harness.start_planner()

    async def changed_published() -> bool:
        return await harness.changed(cmd.plan_id) is not None

    await wait_for(changed_published, "the sweeper re-published plans.changed")
    kinds = Counter(e.kind for e in await harness.events(cmd))
    assert kinds[EventKind.COMPLETED] == 1


async def test_crash_between_stages_is_continued(harness: Harness) -> None:
    """A step that fails after the previous checkpoint (publishing the next stage's jobs)
    leaves the graph between two nodes; the next trigger continues it from there."""
    bus = harness.planner.bus
    original = bus.publish
    failures: list[str] = []

    async def flaky_publish(msg: Any, subject: str, headers: dict[str, str] | None = None) -> Any:
        if subject == "agents.job.budget" and not failures:
            failures.append(subject)
            raise RuntimeError("simulated crash while dispatching the budget stage")
        return await original(msg, subject, headers)

    bus.publish = flaky_publish  # type: ignore[method-assign]
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert failures and view.status is PlanStatus.COMPLETED
    budget_jobs = harness.agents.jobs_of(cmd.plan_id, AgentName.BUDGET)
    assert len({j.id for j in budget_jobs}) == 1
    assert await forked_threads(harness.planner, cmd.plan_id) == []
    await asyncio.sleep(0)


async def test_a_step_whose_checkpoint_was_lost_after_its_writes_is_continued(harness: Harness) -> None:
    """Found by the reliability battery (issue #12, Postgres stopped with `-m immediate` under
    load): a node finished and LangGraph stored its writes, then the database went away before
    the step's checkpoint was written. The live state then shows no `next` node and no open
    interrupt, so `advance` found nothing due and the plan stayed `processing` for good (no job
    pending, no sweep could move it). The next trigger must continue the graph from the stored
    writes."""
    saver = harness.planner.running.engine.graph.checkpointer
    assert saver is not None
    original = saver.aput
    lost: list[str] = []

    async def aput_lost_once(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        if "budget_verdict" in new_versions and not lost:
            lost.append(str(metadata.get("step")))
            raise ConnectionError("simulated: the database went away before the checkpoint")
        return await original(config, checkpoint, metadata, new_versions)

    saver.aput = aput_lost_once  # type: ignore[method-assign]
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert lost and view.status is PlanStatus.COMPLETED, (lost, view.status)
    planning_jobs = harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING)
    assert len({j.id for j in planning_jobs}) == 1
    assert await forked_threads(harness.planner, cmd.plan_id) == []
