"""`plans.cmd.*`: create, revise, decide, cancel, delete.

Each command is made idempotent by natural keys (plan id, run id derived from the command,
first-write-wins rows) and ends with `engine.advance`, which only does what is still due -
so a redelivered command repeats nothing and finishes whatever a crash interrupted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.envelope import Envelope
from tripmesh_contracts.messages import (
    PLAN_COMMANDS,
    MultitaskStrategy,
    PlanCancel,
    PlanChanged,
    PlanCreate,
    PlanDecide,
    PlanDelete,
    PlanRevise,
)
from tripmesh_kit import telemetry
from tripmesh_kit.consume import PermanentError
from tripmesh_kit.logging import get_logger

from tripmesh_planner import domain
from tripmesh_planner.engine import Engine, thread_config
from tripmesh_planner.plan_status import PlanStatusBoard
from tripmesh_planner.store import RevisionOutcome

log = get_logger(__name__)


class CommandHead(BaseModel):
    """Just enough of a command to route it; the rest is validated by its own model."""

    model_config = ConfigDict(extra="allow")

    type: str


def parse_command(head: CommandHead) -> Envelope:
    model = PLAN_COMMANDS.get(head.type)
    if model is None:
        raise PermanentError(f"unknown plan command type {head.type!r}")
    try:
        return model.model_validate(head.model_dump())
    except ValidationError as exc:
        raise PermanentError(f"invalid {head.type}: {exc}") from exc


class Commands:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rt = engine.rt
        self.plan_status = PlanStatusBoard(self.rt.bus, self.rt.settings.plan_status_bucket)

    async def handle(self, head: CommandHead) -> None:
        command = parse_command(head)
        handler: Any = {
            PlanCreate: self.create,
            PlanRevise: self.revise,
            PlanDecide: self.decide,
            PlanCancel: self.cancel,
            PlanDelete: self.delete,
        }[type(command)]
        attrs = {"plan_id": command.plan_id, "user_id": command.user_id, "tripmesh.command": command.type}
        with telemetry.span(f"planner.command {command.type}", attrs):
            await handler(command)

    async def create(self, cmd: PlanCreate) -> None:
        plan = await self.rt.store.create_plan(cmd, domain.create_run_id(cmd.plan_id))
        if plan is None:
            log.warning("create_ignored_plan_of_another_user", plan_id=cmd.plan_id)
            return
        await self.engine.advance(cmd.plan_id)

    async def revise(self, cmd: PlanRevise) -> None:
        outcome = await self.rt.store.add_revision(cmd, domain.revision_run_id(cmd.plan_id, cmd.id))
        if outcome in (RevisionOutcome.NO_PLAN, RevisionOutcome.REJECTED):
            # The gateway answers 409/404 before publishing; this guards a race or a replay.
            log.warning(
                "revision_not_started",
                plan_id=cmd.plan_id,
                outcome=outcome.value,
                strategy=cmd.multitask_strategy.value,
            )
            return
        if outcome is RevisionOutcome.QUEUED and cmd.multitask_strategy is MultitaskStrategy.INTERRUPT:
            await self._mark_cancelling_runs(cmd.plan_id)  # the interrupted run
        await self.engine.advance(cmd.plan_id)

    async def decide(self, cmd: PlanDecide) -> None:
        recorded = await self.rt.store.record_decision(cmd.plan_id, cmd.user_id, cmd.approve)
        if not recorded:
            log.info("decision_not_awaited_or_already_recorded", plan_id=cmd.plan_id)
        # advance either way: a redelivered decision may find the resume still to do
        await self.engine.advance(cmd.plan_id)

    async def cancel(self, cmd: PlanCancel) -> None:
        if await self.rt.store.request_cancel(cmd.plan_id, cmd.user_id, cmd.reason or "cancelled by user"):
            await self._mark_cancelling_runs(cmd.plan_id)
            await self.engine.advance(cmd.plan_id)

    async def _mark_cancelling_runs(self, plan_id: str) -> None:
        """Tell the runners to skip the queued jobs of the runs being cancelled (plan_status.py).
        Read back after the cancel is stored (a redelivered command marks them again), and
        only runs flagged for cancel - never a run activated since, which must run."""
        for run_id in await self.rt.store.cancelling_runs(plan_id):
            await self.plan_status.mark(plan_id, run_id, "cancelled")

    async def delete(self, cmd: PlanDelete) -> None:
        plan = await self.rt.store.soft_delete(cmd.plan_id, cmd.user_id)
        if plan is None:
            log.info("delete_of_unknown_plan_ignored", plan_id=cmd.plan_id)
            return
        if plan.current_run_id is not None:
            await self.plan_status.mark(cmd.plan_id, plan.current_run_id, "deleted")
        # Published on every delivery (same id): re-derivable if we died after the write.
        changed = PlanChanged(
            id=domain.deleted_id(cmd.plan_id),
            user_id=cmd.user_id,
            plan_id=cmd.plan_id,
            correlation_id=cmd.correlation_id,
            version=max(plan.last_version, 1),
            deleted=True,
        )
        await self.rt.bus.publish(changed, subjects.plan_changed(cmd.plan_id))
        # The checkpoints of a deleted plan are of no further use.
        async with self.engine.locks.hold(cmd.plan_id):
            for run_id in await self.rt.store.run_ids(cmd.plan_id):
                thread = thread_config(cmd.plan_id, run_id)["configurable"]["thread_id"]
                checkpointer = self.engine.graph.checkpointer
                if checkpointer is not None and not isinstance(checkpointer, bool):
                    await checkpointer.adelete_thread(thread)
