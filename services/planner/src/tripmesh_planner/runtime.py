"""What the graph nodes, handlers and the sweeper share: stores, bus, events, settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripmesh_contracts import subjects
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import EventKind, PlanStatus
from tripmesh_kit.bus import Bus

from tripmesh_planner import domain
from tripmesh_planner.events import Emitter, RunRef
from tripmesh_planner.executions import Executions
from tripmesh_planner.settings import Settings
from tripmesh_planner.store import Store


@dataclass
class Runtime:
    settings: Settings
    bus: Bus
    store: Store
    executions: Executions
    emitter: Emitter

    async def publish_jobs(self, jobs: list[AgentJob]) -> None:
        """Record jobs as pending, then publish those not yet published. Recording first
        means a job is never out without a row to take its result; a crash in between
        leaves an unpublished row that the sweeper publishes (same id)."""
        progress: dict[tuple[str, str, int], tuple[int, int]] = {}
        for job in await self.executions.record(jobs):
            # a stage's jobs share their round: its progress is read once, not once per job
            key = (job.run_id, job.stage.value, job.round)
            if key not in progress:
                progress[key] = await self.executions.round_progress(job.run_id, job.stage, job.round)
            await self.publish_recorded(job, progress[key])

    async def reuse_previous(self, jobs: list[AgentJob], state: Any) -> list[AgentJob]:
        """Settle the jobs a revision can take from its parent run; returns the rest."""
        parent_run = state.get("parent_run_id")
        if not jobs or not parent_run:
            return jobs
        stage = jobs[0].stage
        agents = domain.reusable_agents(
            stage, state["request"], state.get("parent_request"), state.get("feedback")
        )
        previous = await self.executions.completed_rows(parent_run, stage) if agents else {}
        remaining = []
        for job in jobs:
            row = previous.get(job.agent.value)
            if job.agent not in agents or row is None:
                remaining.append(job)
                continue
            await self.executions.record_reused(job, row)
            done, total = await self.executions.round_progress(job.run_id, job.stage, job.round)
            await self.emitter.emit(
                RunRef.of_job(job),
                EventKind.AGENT_COMPLETED,
                status=PlanStatus.PROCESSING,
                key=(job.id,),
                stage=job.stage,
                agent=job.agent,
                percentage=domain.progress(job.stage, done, total),
                data={"job_id": job.id, "reused_from_version": state.get("parent_version")},
            )
            await self.executions.mark_announced(job.id)
        return remaining

    async def publish_recorded(self, job: AgentJob, progress: tuple[int, int] | None = None) -> None:
        # agent_started goes out before the job: announced after it, a fast agent's
        # agent_completed could come first (seen in the e2e tests). A crash between the two
        # leaves the job unpublished; the sweeper publishes it and re-emits (same event id).
        done, total = progress or await self.executions.round_progress(job.run_id, job.stage, job.round)
        await self.emitter.emit(
            RunRef.of_job(job),
            EventKind.AGENT_STARTED,
            status=PlanStatus.PROCESSING,
            key=(job.id,),
            stage=job.stage,
            agent=job.agent,
            percentage=domain.progress(job.stage, done, total),
            data={"job_id": job.id, "attempt": job.attempt, "round": job.round},
        )
        await self.bus.publish(job, subjects.agent_job(job.agent))
        await self.executions.mark_published(job.id)
