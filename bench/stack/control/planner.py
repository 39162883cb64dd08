"""The planner's graph, run in-process: its runtime with the bus hops replaced by awaits.

`build_graph` needs a `Runtime` (emitter, store, bus, publish_jobs). Here:

- `EventLog` + `LogEmitter`: the same PlanEvents (ids, kinds, percentages), appended to an
  in-memory log per plan that the SSE endpoint reads, instead of published to PLAN_EVENTS;
- `ControlStore`: a run is never cancelled; `finalize_run` writes the version into the plan's
  row in `control.plans` (one UPDATE, where tripmesh inserts an immutable version row);
- `InProcessRuntime.publish_jobs`: `agent_started`, then each job runs as a task
  (`InProcessAgents.outcome`), announcing `agent_completed` / `agent_failed` when it ends;
- `ControlPlanner.run`: the engine's loop without the lock and the bus: invoke the graph,
  and at each stage's interrupt await that stage's tasks and resume it with their outcomes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from nats.js import api
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from tripmesh_contracts import Envelope
from tripmesh_contracts.messages import AgentJob, PlanEvent
from tripmesh_contracts.plans import STAGE_AGENTS, AgentName, EventKind, PlanStatus, Stage
from tripmesh_kit.bus import Bus
from tripmesh_kit.logging import get_logger
from tripmesh_planner import domain
from tripmesh_planner.engine import MAX_STEPS, initial_state, thread_config
from tripmesh_planner.events import Emitter, RunRef, plan_event
from tripmesh_planner.graph import build_graph
from tripmesh_planner.runtime import Runtime
from tripmesh_planner.settings import Settings
from tripmesh_planner.store import PlanRow, RunRow, Store

from bench.stack.control.agents import InProcessAgents

log = get_logger(__name__)
TERMINAL = frozenset({EventKind.COMPLETED, EventKind.PARTIAL, EventKind.FAILED, EventKind.CANCELLED})


@dataclass
class PlanStream:
    user_id: str
    events: list[PlanEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].kind in TERMINAL

    def append(self, event: PlanEvent) -> None:
        self.events.append(event)
        self.changed.set()  # wakes every reader; each clears only after reading up to the end


class EventLog:
    def __init__(self) -> None:
        self.plans: dict[str, PlanStream] = {}

    def open(self, plan_id: str, user_id: str) -> PlanStream:
        return self.plans.setdefault(plan_id, PlanStream(user_id))


class LogEmitter(Emitter):
    def __init__(self, log_: EventLog) -> None:  # no bus, no store: nothing to call
        self.log = log_

    async def emit(
        self,
        run: RunRef,
        kind: EventKind,
        *,
        status: PlanStatus,
        key: tuple[str, ...] = (),
        stage: Stage | None = None,
        agent: AgentName | None = None,
        percentage: int = 0,
        message: str | None = None,
        data: dict[str, Any] | None = None,
        move_plan: bool = True,
    ) -> None:
        event = plan_event(
            run, kind, status=status, key=key, stage=stage, agent=agent,
            percentage=percentage, message=message, data=data,
        )  # fmt: skip
        self.log.open(run.plan_id, run.user_id).append(event)


class NoBus(Bus):
    """`plans.changed` (for vector-sync) has no reader in the control: dropped."""

    def __init__(self) -> None:
        pass

    async def publish(self, msg: Envelope, subject: str, headers: dict[str, str] | None = None) -> api.PubAck:
        return api.PubAck(stream="", seq=0)


class ControlStore(Store):
    SCHEMA = "control"
    DDL = (
        "CREATE SCHEMA IF NOT EXISTS control",
        "CREATE TABLE IF NOT EXISTS control.plans (plan_id text PRIMARY KEY, user_id text NOT NULL,"
        " status text NOT NULL, status_reason text, request jsonb NOT NULL, plan_data jsonb,"
        " created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    )

    def __init__(self, pool: AsyncConnectionPool) -> None:
        super().__init__(pool, self.SCHEMA)
        self.runs: dict[str, RunRow] = {}
        self.started: dict[str, float] = {}

    async def create_tables(self) -> None:
        async with self.pool.connection() as conn:
            for sql in self.DDL:
                await conn.execute(sql)

    async def insert_plan(self, plan: PlanRow, run: RunRow) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO control.plans (plan_id, user_id, status, request) VALUES (%s, %s, %s, %s)",
                (plan.plan_id, plan.user_id, plan.status, Jsonb(run.request)),
            )
        self.runs[run.run_id] = run
        self.started[run.run_id] = time.monotonic()

    async def get_run(self, run_id: str) -> RunRow | None:
        return self.runs.get(run_id)

    async def finalize_run(self, **kw: Any) -> dict[str, Any]:
        status: PlanStatus = kw["status"]
        has_plan = status in (PlanStatus.COMPLETED, PlanStatus.PARTIAL)
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE control.plans SET status = %s, status_reason = %s, plan_data = %s,"
                " updated_at = now() WHERE plan_id = %s",
                (status.value, kw["reason"], Jsonb(kw["plan_data"]), kw["plan_id"]),
            )
        percentage = 100 if has_plan else domain.progress(Stage.FINALIZE)
        return {
            "status": status.value,
            "status_reason": kw["reason"],
            "plan_data": kw["plan_data"],
            "completion_percentage": percentage,
        }

    async def mark_announced(self, run_id: str) -> float | None:
        self.runs.pop(run_id, None)
        started = self.started.pop(run_id, None)
        return None if started is None else time.monotonic() - started


@dataclass
class Round:
    total: int
    done: int = 0
    tasks: dict[str, asyncio.Task[dict[str, Any]]] = field(default_factory=dict)


class InProcessRuntime(Runtime):
    agents: InProcessAgents
    rounds: dict[tuple[str, str, int], Round]

    async def publish_jobs(self, jobs: list[AgentJob]) -> None:
        for job in jobs:
            key = (job.run_id, job.stage.value, job.round)
            round_ = self.rounds.setdefault(key, Round(len(STAGE_AGENTS[job.stage])))
            if job.agent.value in round_.tasks:
                continue  # a node run twice: the job is already running
            await self.emitter.emit(
                RunRef.of_job(job),
                EventKind.AGENT_STARTED,
                status=PlanStatus.PROCESSING,
                key=(job.id,),
                stage=job.stage,
                agent=job.agent,
                percentage=domain.progress(job.stage, round_.done, round_.total),
                data={"job_id": job.id, "attempt": job.attempt, "round": job.round},
            )
            round_.tasks[job.agent.value] = asyncio.create_task(self._run(job, round_))

    async def _run(self, job: AgentJob, round_: Round) -> dict[str, Any]:
        outcome = await self.agents.outcome(job)
        round_.done += 1
        ok = outcome["status"] == domain.OK
        data: dict[str, Any] = {
            "job_id": outcome["job_id"],
            "attempt": outcome["attempt"],
            "round": job.round,
        }
        if not ok:
            data.update(error_kind=outcome["error_kind"], reason=outcome["reason"])
        await self.emitter.emit(
            RunRef.of_job(job),
            EventKind.AGENT_COMPLETED if ok else EventKind.AGENT_FAILED,
            status=PlanStatus.PROCESSING,
            key=(outcome["job_id"],),
            stage=job.stage,
            agent=job.agent,
            percentage=domain.progress(job.stage, round_.done, round_.total),
            data=data,
        )
        return outcome

    async def collect(self, run_id: str, stage: str, round_: int) -> dict[str, dict[str, Any]]:
        """Every outcome of the stage round, awaited (the bus hop, replaced)."""
        tasks = self.rounds.pop((run_id, stage, round_)).tasks
        outcomes = await asyncio.gather(*tasks.values())
        return dict(zip(tasks, outcomes, strict=True))


def make_runtime(
    settings: Settings, store: ControlStore, events: EventLog, agents: InProcessAgents
) -> InProcessRuntime:
    rt = InProcessRuntime(
        settings=settings, bus=NoBus(), store=store, executions=cast(Any, None), emitter=LogEmitter(events)
    )
    rt.agents, rt.rounds = agents, {}
    return rt


class ControlPlanner:
    def __init__(
        self, rt: InProcessRuntime, events: EventLog, checkpointer: BaseCheckpointSaver[Any]
    ) -> None:
        self.rt = rt
        self.events = events
        self.store = cast(ControlStore, rt.store)
        self.graph = build_graph(rt, checkpointer)
        self.running: set[asyncio.Task[None]] = set()

    async def start(self, plan_id: str, user_id: str, request: dict[str, Any]) -> None:
        """Store the plan's row, then run it in the background (the POST answers at once)."""
        run_id = domain.create_run_id(plan_id)
        plan = PlanRow(plan_id, user_id, PlanStatus.PROCESSING.value, run_id, 1, 1, False)
        run = RunRow(run_id, plan_id, "active", 1, None, request, None, run_id, None, False, None)
        self.events.open(plan_id, user_id)
        await self.store.insert_plan(plan, run)
        task = asyncio.create_task(self.run(plan, run))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def run(self, plan: PlanRow, run: RunRow) -> None:
        config = thread_config(plan.plan_id, run.run_id)
        payload: Any = initial_state(plan, run, None)
        try:
            for _ in range(MAX_STEPS):
                out = await self.graph.ainvoke(payload, config, durability="sync")
                interrupts = out.get("__interrupt__") if isinstance(out, dict) else None
                if not interrupts:
                    return
                waiting: dict[str, Any] = interrupts[0].value
                if waiting.get("kind") == "approval":
                    # the bench's plans stay within budget; nobody would answer here
                    payload = Command(resume={"cancelled": "approval is not served by the control"})
                    continue
                outcomes = await self.rt.collect(run.run_id, waiting["stage"], int(waiting["round"]))
                payload = Command(resume={"outcomes": outcomes})
            log.warning("control_step_limit", plan_id=plan.plan_id)
        except Exception as exc:  # the stream must still end: a failed terminal event
            log.exception("control_plan_crashed", plan_id=plan.plan_id)
            ref = RunRef(plan.plan_id, plan.user_id, run.run_id, 1, run.run_id)
            await self.rt.emitter.emit(
                ref, EventKind.FAILED, status=PlanStatus.FAILED, key=("crash",), message=repr(exc)[:500]
            )
