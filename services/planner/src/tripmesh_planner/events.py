"""Publishing plan events (`plans.evt.<user>.<plan>.<kind>`) and plan progress.

Event ids are derived from the step (`domain.event_id(run, kind, *key)`), so a node that
re-runs after a crash republishes the same ids and the stream drops the copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripmesh_contracts import subjects
from tripmesh_contracts.messages import AgentJob, PlanEvent
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus, Stage
from tripmesh_kit.bus import Bus

from tripmesh_planner import domain
from tripmesh_planner.store import Store


@dataclass(frozen=True)
class RunRef:
    """Who a run belongs to: what every event and job of the run carries."""

    plan_id: str
    user_id: str
    run_id: str
    version: int
    correlation_id: str

    @classmethod
    def of_state(cls, state: Any) -> RunRef:
        return cls(
            state["plan_id"], state["user_id"], state["run_id"], state["version"], state["correlation_id"]
        )

    @classmethod
    def of_job(cls, job: AgentJob) -> RunRef:
        return cls(job.plan_id, job.user_id, job.run_id, job.version, job.correlation_id)


def plan_event(
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
) -> PlanEvent:
    """The event of one step of a run; its id is derived from the step (see the module doc)."""
    return PlanEvent(
        id=domain.event_id(run.run_id, kind.value, *key),
        user_id=run.user_id,
        plan_id=run.plan_id,
        correlation_id=run.correlation_id,
        kind=kind,
        status=status,
        version=run.version,
        run_id=run.run_id,
        stage=stage,
        agent=agent,
        completion_percentage=percentage,
        message=message,
        data=data or {},
    )


class Emitter:
    def __init__(self, bus: Bus, store: Store) -> None:
        self.bus = bus
        self.store = store

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
        """Publish one event; `move_plan` also records status/stage/percentage on the plan
        row first (the API's view), for a plan that is still running."""
        if move_plan:
            # a plan waiting for the user says why (the API shows it as status_reason)
            reason = message if status is PlanStatus.AWAITING_APPROVAL else None
            percentage = await self.move_plan(run, status, stage, percentage, reason)
        event = plan_event(
            run, kind, status=status, key=key, stage=stage, agent=agent,
            percentage=percentage, message=message, data=data,
        )  # fmt: skip
        await self.bus.publish(event, subjects.plan_event(run.user_id, run.plan_id, kind))

    async def move_plan(
        self,
        run: RunRef,
        status: PlanStatus,
        stage: Stage | None,
        percentage: int,
        reason: str | None = None,
    ) -> int:
        """Record status/stage/percentage on the plan row; returns the percentage to report
        (it never goes backwards)."""
        return await self.store.set_progress(
            run.plan_id, run.run_id, status, stage.value if stage else None, percentage, reason
        )
