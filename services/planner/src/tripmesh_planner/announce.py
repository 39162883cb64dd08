"""Announcing agent outcomes: `agent_completed` / `agent_failed` events (and a retry's job).

An outcome is stored first and announced after, so a replica can die in between. Its
result is then redelivered - but another replica may have resumed the stage meanwhile (the
sweeper, or the last result of the round), and the late announcement would land after the
stage moved on, even after the plan's terminal event (seen in the e2e SIGKILL test; an SSE
replay then never ends, its last event not being terminal). So the engine announces a
round's outcomes not yet announced (`announced_at` unset) just before resuming it
(`announce_round`), and a redelivered result whose outcome was announced is not announced
again (outside JetStream's duplicate window that would append a second event).
"""

from __future__ import annotations

from typing import Any

from tripmesh_contracts.plans import STAGE_AGENTS, AgentName, EventKind, PlanStatus, Stage

from tripmesh_planner import domain
from tripmesh_planner.events import RunRef
from tripmesh_planner.executions import FINAL, Applied
from tripmesh_planner.runtime import Runtime


async def emit_outcome(
    rt: Runtime, row: dict[str, Any], done: int, total: int, *, move_plan: bool = True
) -> None:
    """The event of one final execution row (its id depends on the job only)."""
    run = RunRef(
        row["plan_id"],
        row["user_id"],
        row["run_id"],
        row["version"],
        row["job"].get("correlation_id") or row["run_id"],
    )
    stage = Stage(row["stage"])
    ok = row["status"] == "completed"
    data: dict[str, Any] = {"job_id": row["job_id"], "attempt": row["attempt"], "round": row["round"]}
    if not ok:
        data["error_kind"] = row["error_kind"]
        if row["error_kind"] == domain.BUDGET_EXHAUSTED:
            # the ledger refused the agent's next LLM call: say that, and keep its words
            data["reason"], data["detail"] = domain.BUDGET_EXHAUSTED, row["error"]
        else:
            data["reason"] = row["error"]
    await rt.emitter.emit(
        run,
        EventKind.AGENT_COMPLETED if ok else EventKind.AGENT_FAILED,
        status=PlanStatus.PROCESSING,
        key=(row["job_id"],),
        stage=stage,
        agent=AgentName(row["agent"]),
        percentage=domain.progress(stage, done, total),
        data=data,
        move_plan=move_plan,
    )
    await rt.executions.mark_announced(row["job_id"])


async def announce(rt: Runtime, applied: Applied) -> tuple[int, int] | None:
    """Events for what happened to a job (once: a redelivery re-announces only what a crash
    left unannounced; the retry job keeps its id, so republishing it is harmless). Returns
    the round's progress (done, total) when it read it, for the caller to reuse."""
    row = applied.row
    if applied.next_job is not None:
        await rt.publish_jobs([applied.next_job])
    if row is None or row["status"] not in FINAL or row.get("announced_at") is not None:
        return None
    done, total = await rt.executions.round_progress(row["run_id"], Stage(row["stage"]), row["round"])
    await emit_outcome(rt, row, done, total)
    return done, total


async def announce_round(rt: Runtime, run_id: str, stage: Stage, round_: int) -> None:
    """Announce the outcomes of a complete round that a crash left unannounced, before the
    graph moves past it. Called under the plan's lock, right before the resume (which moves
    the plan row itself)."""
    rows = await rt.executions.round_rows(run_id, stage, round_)
    final = [row for row in rows.values() if row["status"] in FINAL]
    for row in sorted(final, key=lambda r: str(r["agent"])):
        if row["announced_at"] is None:
            await emit_outcome(rt, row, len(final), len(STAGE_AGENTS[stage]), move_plan=False)
