"""`agents.result.<plan>`: store each result once, retry or settle the job, resume the stage.

A result is applied only to a pending job (a duplicate, or a late answer to a job that timed
out or was skipped, changes nothing). The stage is resumed by `engine.advance` once every
agent of the round has an outcome: one resume per stage round, whichever result is last.
"""

from __future__ import annotations

from tripmesh_contracts.messages import AgentResult
from tripmesh_contracts.plans import Stage
from tripmesh_kit.logging import get_logger

from tripmesh_planner import metrics
from tripmesh_planner.announce import announce
from tripmesh_planner.engine import Engine
from tripmesh_planner.executions import FINAL

log = get_logger(__name__)


class Results:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rt = engine.rt

    async def handle(self, result: AgentResult) -> None:
        rt = self.rt
        applied = await rt.executions.apply_result(result, rt.settings.attempts_for, rt.settings.deadline_for)
        metrics.AGENT_OUTCOMES.labels(agent=result.agent.value, outcome=applied.kind).inc()
        if applied.row is None:
            log.info("result_for_unknown_job_ignored", job_id=result.job_id)
            return
        if applied.kind == "ignored" and applied.row["status"] not in FINAL:
            log.info("late_result_ignored", job_id=result.job_id, status=applied.row["status"])
            return
        progress = await announce(rt, applied)
        row = applied.row
        done, total = progress or await rt.executions.round_progress(
            row["run_id"], Stage(row["stage"]), row["round"]
        )
        if done == total:
            await self.engine.advance(row["plan_id"])
