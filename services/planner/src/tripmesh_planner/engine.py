"""Driving a plan's graph: the only code that invokes or resumes it.

`advance(plan_id)` is called by every trigger - a command, a stored result, a decision, the
sweeper - and is safe to call any number of times from any replica: under the plan's
advisory lock it reads the checkpoint and does only what is still due:

- graph never started            -> start it (the run's initial state);
- waiting for a stage's agents   -> resume once, with all outcomes, when all are in;
- waiting for approval           -> resume with the recorded decision, if there is one;
- cancel requested, waiting      -> resume with the cancellation;
- stopped between two nodes      -> continue (a replica died mid-step, or the database went
                                    away before a finished step was checkpointed);
- finished                       -> start the next queued revision, if any.

Because the decision is re-derived under the lock from durable state (checkpoint + rows),
two replicas racing on one plan do the work once, and a crash anywhere is repaired by the
next trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt
from tripmesh_contracts.plans import Stage
from tripmesh_kit import telemetry
from tripmesh_kit.logging import get_logger

from tripmesh_planner import domain, metrics
from tripmesh_planner.announce import announce_round
from tripmesh_planner.locks import PlanLocks
from tripmesh_planner.runtime import Runtime
from tripmesh_planner.store import PlanRow, RunRow

log = get_logger(__name__)

MAX_STEPS = 16
"""Graph invocations per advance call: a guard against a loop, far above what one needs."""


def initial_state(plan: PlanRow, run: RunRow, parent: RunRow | None) -> dict[str, Any]:
    assert run.version is not None
    return {
        "plan_id": plan.plan_id,
        "user_id": plan.user_id,
        "run_id": run.run_id,
        "version": run.version,
        "parent_version": run.parent_version,
        "parent_run_id": parent.run_id if parent else None,
        "parent_request": parent.request if parent else None,
        "correlation_id": run.correlation_id or run.run_id,
        "request": run.request,
        "feedback": run.feedback,
        "started_at": datetime.now(UTC).isoformat(),
        "round": 0,
        "constraints": {},
        "outcomes": {},
        "accepted_overrun": False,
        "ended": None,
        "end_reason": None,
        "timings": {},
        # text, not Decimal: the checkpoint serializer keeps it as it is; None = the ledger's default
        "llm_cap_usd": None if plan.plan_budget_usd is None else str(plan.plan_budget_usd),
    }


def thread_config(plan_id: str, run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": domain.thread_id(plan_id, run_id)}}


class Engine:
    def __init__(self, rt: Runtime, graph: CompiledStateGraph[Any, Any, Any, Any], locks: PlanLocks) -> None:
        self.rt = rt
        self.graph = graph
        self.locks = locks

    async def advance(self, plan_id: str) -> None:
        async with self.locks.hold(plan_id):
            for _ in range(MAX_STEPS):
                if not await self._step(plan_id):
                    return
            log.warning("advance_step_limit", plan_id=plan_id)

    async def _step(self, plan_id: str) -> bool:
        """Do the next due thing for the plan; False when nothing is due."""
        plan = await self.rt.store.get_plan(plan_id)
        if plan is None or plan.deleted or plan.current_run_id is None:
            return False
        run = await self.rt.store.get_run(plan.current_run_id)
        if run is None:
            return False
        config = thread_config(plan_id, run.run_id)
        snap = await self.graph.aget_state(config)
        if snap.interrupts:
            waiting = snap.interrupts[0].value
            resume = await self._resume_value(run, waiting)
            if resume is None:
                return False
            if "outcomes" in resume:
                # what a replica stored but died before announcing goes out before the stage
                # moves on, never after it (announce.py)
                await announce_round(self.rt, run.run_id, Stage(waiting["stage"]), int(waiting["round"]))
            return await self._due_after(
                await self._invoke(Command(resume=resume), config, "resume", plan), run
            )
        if snap.next or snap.tasks:
            # `next` lists the nodes of the step still to run. A step whose nodes all finished
            # (LangGraph stored their writes) but whose checkpoint was never written - the
            # database went away in between - lists none, only its tasks; continuing applies
            # the stored writes and moves on. A finished graph has no tasks left.
            pending = list(snap.next) or [task.name for task in snap.tasks]
            log.info("graph_continued_after_interruption", plan_id=plan_id, next=pending)
            return await self._due_after(await self._invoke(None, config, "continue", plan), run)
        if not snap.values:
            if run.state != "active":
                return False
            parent = await self.rt.store.run_of_version(plan_id, run.parent_version)
            return await self._due_after(
                await self._invoke(initial_state(plan, run, parent), config, "start", plan), run
            )
        if run.state == "finished":
            return await self.rt.store.activate_next_queued(plan_id) is not None
        return False

    async def _due_after(self, interrupts: tuple[Interrupt, ...], run: RunRow) -> bool:
        """Whether another step may be due right after an invocation, decided without
        re-reading the plan, the run and the checkpoint (#13: that re-read cost four
        statements and a checkpoint decode per advance, and almost always found nothing).

        Stopping is safe because every trigger stores its fact and only then calls
        `advance`, which waits for this lock: a result, decision or cancel that arrived
        during the invocation gets its own step. What no trigger will repeat is a fact
        stored before the invocation, `run` as read then: a cancel, a decision (the graph
        reached the approval after a crash), or a round whose jobs were all answered before
        a crash made their stage dispatch again (job ids are deterministic). A graph that
        ran to its end takes the full step: a queued revision may start. Due or not is the
        question `_resume_value` answers for the next step, asked of the same `run`."""
        if not interrupts:
            return True
        return await self._resume_value(run, interrupts[0].value) is not None

    async def _resume_value(self, run: RunRow, waiting: dict[str, Any]) -> dict[str, Any] | None:
        if run.cancel_requested:
            return {"cancelled": run.cancel_reason or "cancelled"}
        if waiting.get("kind") == "approval":
            return None if run.decision is None else {"approve": run.decision}
        outcomes = await self.rt.executions.round_outcomes(
            run.run_id, Stage(waiting["stage"]), int(waiting["round"])
        )
        return None if outcomes is None else {"outcomes": outcomes}

    async def _invoke(
        self, payload: Any, config: RunnableConfig, kind: str, plan: PlanRow
    ) -> tuple[Interrupt, ...]:
        """Run the graph until it interrupts or ends; the interrupts it stopped at."""
        metrics.GRAPH_STEPS.labels(kind=kind).inc()
        # a resume is caused by the message being handled (the last agent result of a round,
        # a decision, a cancel): its span links to that message's producer
        links = telemetry.message_links() if kind == "resume" else None
        attrs = {"plan_id": plan.plan_id, "user_id": plan.user_id, "tripmesh.graph.step": kind}
        with telemetry.span(f"planner.graph {kind}", attrs, links=links):
            # durability="sync": the checkpoint of each step is written before the next step
            # starts, so a crash never loses a step whose side effects already happened.
            output = await self.graph.ainvoke(payload, config, durability="sync", version="v2")
        return output.interrupts
