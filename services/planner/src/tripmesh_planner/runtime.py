"""What the graph nodes, handlers and the sweeper share: stores, bus, events, settings."""

from __future__ import annotations

import asyncio
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
        await self.publish_recorded(await self.executions.record(jobs))

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

    async def publish_recorded(self, jobs: list[AgentJob]) -> None:
        """Announce and publish recorded jobs (a stage's, or those the sweeper found
        unpublished), round by round."""
        rounds: dict[tuple[str, str, int], list[AgentJob]] = {}
        for job in jobs:
            rounds.setdefault((job.run_id, job.stage.value, job.round), []).append(job)
        for round_jobs in rounds.values():
            await self._publish_round(round_jobs)

    async def _publish_round(self, jobs: list[AgentJob]) -> None:
        """The round's progress is read once and the plan row moved once for all its jobs
        (issue #13: one statement each per round, not per job), and the jobs go out
        concurrently."""
        first = jobs[0]
        done, total = await self.executions.round_progress(first.run_id, first.stage, first.round)
        percentage = await self.emitter.move_plan(
            RunRef.of_job(first),
            PlanStatus.PROCESSING,
            first.stage,
            domain.progress(first.stage, done, total),
        )
        # every publish is awaited before anything is raised: none is left running behind
        # the caller; the first failure is raised as itself (its type decides the retry)
        outcomes = await asyncio.gather(
            *(self._announce_then_publish(job, percentage) for job in jobs), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        await self.executions.mark_published([job.id for job in jobs])

    async def _announce_then_publish(self, job: AgentJob, percentage: int) -> None:
        # agent_started goes out before the job: announced after it, a fast agent's
        # agent_completed could come first (seen in the e2e tests). A crash between the two
        # leaves the job unpublished; the sweeper publishes it and re-emits (same event id).
        await self.emitter.emit(
            RunRef.of_job(job),
            EventKind.AGENT_STARTED,
            status=PlanStatus.PROCESSING,
            key=(job.id,),
            stage=job.stage,
            agent=job.agent,
            percentage=percentage,
            data={"job_id": job.id, "attempt": job.attempt, "round": job.round},
            move_plan=False,
        )
        await self.bus.publish(job, subjects.agent_job(job.agent))
