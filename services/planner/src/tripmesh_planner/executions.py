"""Postgres: agent executions, one row per job attempt (`job_id` = the AgentJob's id).

A row is `pending` until its result arrives or its deadline passes, then `completed` or
`failed` (final), or `retried` / `timed_out` when a next attempt took over. Only a pending
row accepts a result, so duplicates and late answers are ignored by construction; row locks
(`FOR UPDATE`, `SKIP LOCKED` in the sweeper) decide races between a result and a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_contracts.plans import STAGE_AGENTS, AgentName, Stage

from tripmesh_planner import domain
from tripmesh_planner.pgbase import SchemaStore

FINAL = ("completed", "failed")
NOT_RETRYABLE = frozenset({"budget_exhausted", "cancelled", "invalid_request"})
"""Error kinds another attempt cannot fix."""


@dataclass(frozen=True)
class Applied:
    """What storing a result did: `completed` / `failed` (final), `retry` (next attempt
    recorded, to publish), `ignored` (unknown job, duplicate or late)."""

    kind: str
    row: dict[str, Any] | None = None
    next_job: AgentJob | None = None


def outcome_of(row: dict[str, Any]) -> dict[str, Any]:
    """The graph's view of a final row (see domain module docstring)."""
    ok = row["status"] == "completed"
    return {
        "agent": row["agent"],
        "status": domain.OK if ok else domain.DEGRADED,
        "output": row["output"] if ok else None,
        "reason": None if ok else (row["error"] or "failed"),
        "error_kind": row["error_kind"],
        "job_id": row["job_id"],
        "attempt": row["attempt"],
        "round": row["round"],
        "model": row["model"],
        "cost_usd": str(row["cost_usd"]),
        "duration_ms": row["duration_ms"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
    }


def next_attempt(job: AgentJob, deadline_seconds: float) -> AgentJob:
    attempt = job.attempt + 1
    return job.model_copy(
        update={
            "id": domain.job_id(job.plan_id, job.run_id, job.stage, job.round, job.agent, attempt),
            "attempt": attempt,
            "occurred_at": datetime.now(UTC),
            "deadline": datetime.now(UTC) + timedelta(seconds=deadline_seconds),
        }
    )


def job_values(job: AgentJob) -> tuple[Any, ...]:
    """An `agent_executions` row's job columns, in the order its INSERTs name them (job_id
    through deadline_at)."""
    return (
        job.id,
        job.plan_id,
        job.run_id,
        job.user_id,
        job.version,
        job.stage.value,
        job.round,
        job.agent.value,
        job.attempt,
        Jsonb(job.model_dump(mode="json")),
        job.deadline,
    )


class Executions(SchemaStore):
    async def _insert(self, conn: AsyncConnection[Any], job: AgentJob) -> None:
        assert job.deadline is not None
        await conn.execute(
            self.q(
                "INSERT INTO {s}.agent_executions (job_id, plan_id, run_id, user_id, version, stage,"
                " round, agent, attempt, status, job, deadline_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s)"
                " ON CONFLICT DO NOTHING"
            ),
            job_values(job),
        )

    async def record(self, jobs: list[AgentJob]) -> list[AgentJob]:
        """Record jobs as pending (first write wins); returns those still to publish, as
        first recorded - a node re-run publishes the same payloads under the same ids."""
        async with self.pool.connection() as conn, conn.transaction():
            for job in jobs:
                await self._insert(conn, job)
            cur = await conn.execute(
                self.q(
                    "SELECT job FROM {s}.agent_executions WHERE job_id = ANY(%s)"
                    " AND status = 'pending' AND published_at IS NULL ORDER BY agent"
                ),
                ([j.id for j in jobs],),
            )
            return [AgentJob.model_validate(r[0]) for r in await cur.fetchall()]

    async def mark_published(self, job_ids: list[str]) -> None:
        async with self.pool.connection() as conn:  # one statement: autocommit (app.py)
            await conn.execute(
                self.q(
                    "UPDATE {s}.agent_executions SET published_at = now()"
                    " WHERE job_id = ANY(%s) AND published_at IS NULL"
                ),
                (job_ids,),
            )

    async def get(self, job_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(self.q("SELECT * FROM {s}.agent_executions WHERE job_id = %s"), (job_id,))
            return await cur.fetchone()

    async def apply_result(
        self,
        result: AgentResult,
        attempts_for: Callable[[AgentName], int],
        deadline_for: Callable[[AgentName], float],
    ) -> Applied:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                self.q("SELECT * FROM {s}.agent_executions WHERE job_id = %s FOR UPDATE"), (result.job_id,)
            )
            row = await cur.fetchone()
            if row is None or row["status"] != "pending":
                return Applied("ignored", row)
            agent = AgentName(row["agent"])
            retry = (
                not result.ok
                and row["attempt"] < attempts_for(agent)
                and result.error_kind not in NOT_RETRYABLE
            )
            status = "completed" if result.ok else ("retried" if retry else "failed")
            error = None if result.ok else (result.error or result.error_kind or "agent failed")
            await cur.execute(
                self.q(
                    "UPDATE {s}.agent_executions SET status = %s, output = %s, error = %s,"
                    " error_kind = %s, cost_usd = %s, prompt_tokens = %s, completion_tokens = %s,"
                    " duration_ms = %s, model = %s, finished_at = now() WHERE job_id = %s RETURNING *"
                ),
                (
                    status,
                    Jsonb(result.output) if result.ok else None,
                    error,
                    None if result.ok else result.error_kind,
                    result.cost_usd,
                    result.prompt_tokens,
                    result.completion_tokens,
                    result.duration_ms,
                    result.model,
                    result.job_id,
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            if not retry:
                return Applied(status, row)
            job = next_attempt(AgentJob.model_validate(row["job"]), deadline_for(agent))
            await self._insert(conn, job)
            return Applied("retry", row, job)

    async def expire_overdue(
        self,
        attempts_for: Callable[[AgentName], int],
        deadline_for: Callable[[AgentName], float],
        limit: int = 100,
    ) -> list[Applied]:
        """Pending jobs past their deadline: a next attempt (`retry`), or `failed` when the
        attempts are spent. SKIP LOCKED: concurrent sweepers never take the same row."""
        applied: list[Applied] = []
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                self.q(
                    "SELECT * FROM {s}.agent_executions WHERE status = 'pending' AND deadline_at < now()"
                    " ORDER BY deadline_at LIMIT %s FOR UPDATE SKIP LOCKED"
                ),
                (limit,),
            )
            for row in await cur.fetchall():
                agent = AgentName(row["agent"])
                spent = row["attempt"] >= attempts_for(agent)
                status = "failed" if spent else "timed_out"
                error = f"no result before the deadline (attempt {row['attempt']})"
                await cur.execute(
                    self.q(
                        "UPDATE {s}.agent_executions SET status = %s, error = %s, error_kind = 'deadline',"
                        " finished_at = now() WHERE job_id = %s RETURNING *"
                    ),
                    (status, error, row["job_id"]),
                )
                updated = await cur.fetchone()
                if spent:
                    applied.append(Applied("failed", updated))
                    continue
                job = next_attempt(AgentJob.model_validate(row["job"]), deadline_for(agent))
                await self._insert(conn, job)
                applied.append(Applied("retry", updated, job))
        return applied

    async def completed_rows(self, run_id: str, stage: Stage) -> dict[str, dict[str, Any]]:
        """The completed first-round rows of a stage of an earlier run, by agent."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                self.q(
                    "SELECT DISTINCT ON (agent) * FROM {s}.agent_executions WHERE run_id = %s"
                    " AND stage = %s AND round = 0 AND status = 'completed' ORDER BY agent, attempt DESC"
                ),
                (run_id, stage.value),
            )
            return {r["agent"]: r for r in await cur.fetchall()}

    async def record_reused(self, job: AgentJob, previous: dict[str, Any]) -> None:
        """Record `job` as already completed with an earlier run's output (never published)."""
        assert job.deadline is not None
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.agent_executions (job_id, plan_id, run_id, user_id, version, stage,"
                    " round, agent, attempt, status, job, deadline_at, output, model, finished_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'completed', %s, %s, %s, %s, now())"
                    " ON CONFLICT DO NOTHING"
                ),
                (
                    *job_values(job),
                    Jsonb(previous["output"]),
                    f"reused:{previous['job_id']}",
                ),
            )

    async def unpublished(self, older_than: float, limit: int = 100) -> list[AgentJob]:
        """Recorded but never published (the process died in between)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                self.q(
                    "SELECT job FROM {s}.agent_executions WHERE status = 'pending'"
                    " AND published_at IS NULL AND created_at < now() - make_interval(secs => %s)"
                    " ORDER BY created_at LIMIT %s"
                ),
                (older_than, limit),
            )
            return [AgentJob.model_validate(r[0]) for r in await cur.fetchall()]

    async def mark_announced(self, job_id: str) -> None:
        async with self.pool.connection() as conn:  # one statement: autocommit (app.py)
            await conn.execute(
                self.q(
                    "UPDATE {s}.agent_executions SET announced_at = now()"
                    " WHERE job_id = %s AND announced_at IS NULL"
                ),
                (job_id,),
            )

    async def round_rows(self, run_id: str, stage: Stage, round_: int) -> dict[str, dict[str, Any]]:
        """The latest attempt of each agent of the stage round, by agent."""
        return await self._latest(run_id, stage, round_)

    async def _latest(self, run_id: str, stage: Stage, round_: int) -> dict[str, dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                self.q(
                    "SELECT DISTINCT ON (agent) * FROM {s}.agent_executions WHERE run_id = %s"
                    " AND stage = %s AND round = %s ORDER BY agent, attempt DESC"
                ),
                (run_id, stage.value, round_),
            )
            return {r["agent"]: r for r in await cur.fetchall()}

    async def round_progress(self, run_id: str, stage: Stage, round_: int) -> tuple[int, int]:
        """(agents with a final outcome, agents in the stage)."""
        latest = await self._latest(run_id, stage, round_)
        done = sum(1 for a in STAGE_AGENTS[stage] if latest.get(a.value, {}).get("status") in FINAL)
        return done, len(STAGE_AGENTS[stage])

    async def round_outcomes(
        self, run_id: str, stage: Stage, round_: int
    ) -> dict[str, dict[str, Any]] | None:
        """Every agent's outcome of the stage round, or None while one is still open."""
        latest = await self._latest(run_id, stage, round_)
        outcomes = {}
        for agent in STAGE_AGENTS[stage]:
            row = latest.get(agent.value)
            if row is None or row["status"] not in FINAL:
                return None
            outcomes[agent.value] = outcome_of(row)
        return outcomes
