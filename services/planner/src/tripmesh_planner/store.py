"""Postgres: plans, runs and immutable plan versions (the planner schema).

Every write is keyed naturally (plan id, run id = f(command), (plan, version)) so a
redelivered command or a node that re-runs after a crash changes nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from tripmesh_contracts.messages import MultitaskStrategy, PlanCreate, PlanRevise
from tripmesh_contracts.plans import PlanStatus

from tripmesh_planner.pgbase import SchemaStore

ACTIVE_STATUSES = [PlanStatus.PROCESSING.value, PlanStatus.AWAITING_APPROVAL.value]


@dataclass(frozen=True)
class PlanRow:
    plan_id: str
    user_id: str
    status: str
    current_run_id: str | None
    current_version: int
    last_version: int
    deleted: bool
    plan_budget_usd: Decimal | None = None
    """The plan's own LLM spend cap (PlanCreate.plan_budget_usd); every job carries it."""

    @classmethod
    def of(cls, row: dict[str, Any]) -> PlanRow:
        return cls(
            row["plan_id"],
            row["user_id"],
            row["status"],
            row["current_run_id"],
            row["current_version"],
            row["last_version"],
            row["deleted_at"] is not None,
            row.get("plan_budget_usd"),
        )


@dataclass(frozen=True)
class RunRow:
    run_id: str
    plan_id: str
    state: str
    version: int | None
    parent_version: int | None
    request: dict[str, Any]
    feedback: str | None
    correlation_id: str | None
    decision: bool | None
    cancel_requested: bool
    cancel_reason: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> RunRow:
        return cls(
            row["run_id"],
            row["plan_id"],
            row["state"],
            row["version"],
            row["parent_version"],
            row["request"],
            row["feedback"],
            row["correlation_id"],
            row["decision"],
            row["cancel_requested"],
            row["cancel_reason"],
        )


class RevisionOutcome(StrEnum):
    STARTED = "started"
    QUEUED = "queued"
    REJECTED = "rejected"
    ALREADY_KNOWN = "already_known"
    NO_PLAN = "no_plan"


def _json(value: Any) -> Jsonb:
    return Jsonb(json.loads(json.dumps(value, default=str)))


class Store(SchemaStore):
    # --- reads used by the engine ------------------------------------------------------

    async def get_plan(self, plan_id: str) -> PlanRow | None:
        async with self.pool.connection() as conn:
            row = await self._one(conn, "SELECT * FROM {s}.plans WHERE plan_id = %s", (plan_id,))
        return PlanRow.of(row) if row else None

    async def get_run(self, run_id: str) -> RunRow | None:
        async with self.pool.connection() as conn:
            row = await self._one(conn, "SELECT * FROM {s}.runs WHERE run_id = %s", (run_id,))
        return RunRow.of(row) if row else None

    # --- commands ----------------------------------------------------------------------

    async def create_plan(self, cmd: PlanCreate, run_id: str) -> PlanRow | None:
        """Insert the plan and its first run (version 1); the existing plan on redelivery.
        None when the plan id belongs to another user."""
        request = cmd.request.model_dump(mode="json")
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.plans (plan_id, user_id, request, status, current_run_id,"
                    " last_version, plan_budget_usd, correlation_id) VALUES (%s, %s, %s, %s, %s, 1, %s, %s)"
                    " ON CONFLICT (plan_id) DO NOTHING"
                ),
                (
                    cmd.plan_id,
                    cmd.user_id,
                    _json(request),
                    PlanStatus.PROCESSING.value,
                    run_id,
                    cmd.plan_budget_usd,
                    cmd.correlation_id,
                ),
            )
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.runs (run_id, plan_id, command_id, state, version, request,"
                    " correlation_id, activated_at) VALUES (%s, %s, %s, 'active', 1, %s, %s, now())"
                    " ON CONFLICT (run_id) DO NOTHING"
                ),
                (run_id, cmd.plan_id, cmd.id, _json(request), cmd.correlation_id),
            )
            row = await self._one(conn, "SELECT * FROM {s}.plans WHERE plan_id = %s", (cmd.plan_id,))
        plan = PlanRow.of(row) if row else None
        return plan if plan and plan.user_id == cmd.user_id else None

    async def add_revision(self, cmd: PlanRevise, run_id: str) -> RevisionOutcome:
        request = _json(cmd.request.model_dump(mode="json"))
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._one(
                conn, "SELECT * FROM {s}.plans WHERE plan_id = %s FOR UPDATE", (cmd.plan_id,)
            )
            if row is None or row["deleted_at"] is not None or row["user_id"] != cmd.user_id:
                return RevisionOutcome.NO_PLAN
            if await self._one(conn, "SELECT 1 FROM {s}.runs WHERE run_id = %s", (run_id,)):
                return RevisionOutcome.ALREADY_KNOWN
            busy = row["status"] in ACTIVE_STATUSES or bool(
                await self._one(
                    conn, "SELECT 1 FROM {s}.runs WHERE plan_id = %s AND state = 'queued'", (cmd.plan_id,)
                )
            )
            if busy and cmd.multitask_strategy is MultitaskStrategy.REJECT:
                return RevisionOutcome.REJECTED
            if busy:
                await conn.execute(
                    self.q(
                        "INSERT INTO {s}.runs (run_id, plan_id, command_id, state, request, feedback,"
                        " correlation_id) VALUES (%s, %s, %s, 'queued', %s, %s, %s)"
                    ),
                    (run_id, cmd.plan_id, cmd.id, request, cmd.feedback, cmd.correlation_id),
                )
                if cmd.multitask_strategy is MultitaskStrategy.INTERRUPT:
                    await self._cancel_active(conn, cmd.plan_id, "superseded by a revision")
                return RevisionOutcome.QUEUED
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.runs (run_id, plan_id, command_id, state, request, feedback,"
                    " correlation_id) VALUES (%s, %s, %s, 'queued', %s, %s, %s)"
                ),
                (run_id, cmd.plan_id, cmd.id, request, cmd.feedback, cmd.correlation_id),
            )
            await self._activate(conn, cmd.plan_id, run_id)
            return RevisionOutcome.STARTED

    async def activate_next_queued(self, plan_id: str) -> RunRow | None:
        """Start the oldest queued run once the current one has finished."""
        async with self.pool.connection() as conn, conn.transaction():
            plan = await self._one(conn, "SELECT * FROM {s}.plans WHERE plan_id = %s FOR UPDATE", (plan_id,))
            if plan is None or plan["deleted_at"] is not None or plan["status"] in ACTIVE_STATUSES:
                return None
            nxt = await self._one(
                conn,
                "SELECT run_id FROM {s}.runs WHERE plan_id = %s AND"
                " state = 'queued' ORDER BY created_at, run_id LIMIT 1",
                (plan_id,),
            )
            if nxt is None:
                return None
            return await self._activate(conn, plan_id, nxt["run_id"])

    async def _activate(self, conn: AsyncConnection[Any], plan_id: str, run_id: str) -> RunRow:
        """Give the run the next version number (parent = the latest stored version)."""
        row = await self._one(
            conn,
            self.q(
                "UPDATE {s}.plans SET last_version = last_version + 1, current_run_id = %s,"
                " status = %s, status_reason = NULL, stage = NULL, completion_percentage = 0,"
                " completed_at = NULL, updated_at = now(),"
                " request = (SELECT request FROM {s}.runs WHERE run_id = %s)"
                " WHERE plan_id = %s RETURNING last_version, current_version"
            ),
            (run_id, PlanStatus.PROCESSING.value, run_id, plan_id),
        )
        assert row is not None
        parent = row["current_version"] or None
        run = await self._one(
            conn,
            self.q(
                "UPDATE {s}.runs SET state = 'active', version = %s, parent_version = %s,"
                " activated_at = now() WHERE run_id = %s RETURNING *"
            ),
            (row["last_version"], parent, run_id),
        )
        assert run is not None
        return RunRow.of(run)

    async def _cancel_active(self, conn: AsyncConnection[Any], plan_id: str, reason: str) -> None:
        await conn.execute(
            self.q(
                "UPDATE {s}.runs SET cancel_requested = true, cancel_reason = %s"
                " WHERE plan_id = %s AND state = 'active' AND NOT cancel_requested"
            ),
            (reason, plan_id),
        )
        await conn.execute(
            self.q(
                "UPDATE {s}.agent_executions SET status = 'skipped', finished_at = now()"
                " WHERE plan_id = %s AND status = 'pending'"
            ),
            (plan_id,),
        )

    async def request_cancel(self, plan_id: str, user_id: str, reason: str) -> bool:
        """Mark the active run cancelled (the graph finishes it) and drop queued revisions."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._one(conn, "SELECT * FROM {s}.plans WHERE plan_id = %s FOR UPDATE", (plan_id,))
            if row is None or row["user_id"] != user_id or row["deleted_at"] is not None:
                return False
            await conn.execute(
                self.q(
                    "UPDATE {s}.runs SET state = 'dropped', finished_at = now()"
                    " WHERE plan_id = %s AND state = 'queued'"
                ),
                (plan_id,),
            )
            await self._cancel_active(conn, plan_id, reason)
            return True

    async def record_decision(self, plan_id: str, user_id: str, approve: bool) -> bool:
        """Store the approval answer once; later answers are ignored."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._one(
                conn,
                self.q(
                    "UPDATE {s}.runs r SET decision = %s FROM {s}.plans p"
                    " WHERE p.plan_id = %s AND p.user_id = %s AND p.deleted_at IS NULL"
                    " AND p.status = %s AND r.run_id = p.current_run_id AND r.decision IS NULL"
                    " RETURNING r.run_id"
                ),
                (approve, plan_id, user_id, PlanStatus.AWAITING_APPROVAL.value),
            )
        return row is not None

    async def soft_delete(self, plan_id: str, user_id: str) -> PlanRow | None:
        """Mark the plan deleted (idempotent); its running work is cancelled. None if it is
        not this user's plan."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._one(conn, "SELECT * FROM {s}.plans WHERE plan_id = %s FOR UPDATE", (plan_id,))
            if row is None or row["user_id"] != user_id:
                return None
            if row["deleted_at"] is None:
                await self._cancel_active(conn, plan_id, "plan deleted")
                await conn.execute(
                    self.q(
                        "UPDATE {s}.runs SET state = 'dropped', finished_at = now()"
                        " WHERE plan_id = %s AND state IN ('queued', 'active')"
                    ),
                    (plan_id,),
                )
                row = await self._one(
                    conn,
                    self.q(
                        "UPDATE {s}.plans SET deleted_at = now(), updated_at = now()"
                        " WHERE plan_id = %s RETURNING *"
                    ),
                    (plan_id,),
                )
        return PlanRow.of(row) if row else None

    async def run_of_version(self, plan_id: str, version: int | None) -> RunRow | None:
        if version is None:
            return None
        async with self.pool.connection() as conn:
            row = await self._one(
                conn, "SELECT * FROM {s}.runs WHERE plan_id = %s AND version = %s", (plan_id, version)
            )
        return RunRow.of(row) if row else None

    async def cancelling_runs(self, plan_id: str) -> list[str]:
        """Runs of the plan still active with a cancel requested (a cancel, or an interrupting
        revision): never a run activated after them, which starts without the flag."""
        rows = await self._all(
            "SELECT run_id FROM {s}.runs WHERE plan_id = %s AND state = 'active' AND cancel_requested",
            (plan_id,),
        )
        return [r["run_id"] for r in rows]

    async def run_ids(self, plan_id: str) -> list[str]:
        return [
            r["run_id"] for r in await self._all("SELECT run_id FROM {s}.runs WHERE plan_id = %s", (plan_id,))
        ]

    # --- progress and the end of a run -------------------------------------------------

    async def set_progress(
        self,
        plan_id: str,
        run_id: str,
        status: PlanStatus,
        stage: str | None,
        percentage: int,
        reason: str | None = None,
    ) -> int:
        """Move a running plan's status/stage/percentage (never backwards, never out of a
        terminal status); returns the percentage to report."""
        async with self.pool.connection() as conn:  # one statement: autocommit (app.py)
            row = await self._one(
                conn,
                self.q(
                    "UPDATE {s}.plans SET status = %s, stage = COALESCE(%s, stage), updated_at = now(),"
                    " completion_percentage = GREATEST(completion_percentage, %s), status_reason = %s"
                    " WHERE plan_id = %s AND current_run_id = %s AND status = ANY(%s)"
                    " RETURNING completion_percentage"
                ),
                (status.value, stage, percentage, reason, plan_id, run_id, ACTIVE_STATUSES),
            )
        return int(row["completion_percentage"]) if row else percentage

    async def finalize_run(
        self,
        *,
        plan_id: str,
        run_id: str,
        user_id: str,
        version: int,
        parent_version: int | None,
        status: PlanStatus,
        reason: str | None,
        request: dict[str, Any],
        plan_data: dict[str, Any],
        agent_results: dict[str, Any],
        feedback: str | None,
        timings: dict[str, Any],
        started_at: datetime | None,
    ) -> dict[str, Any]:
        """Store the immutable version (first write wins) and close the run; returns the
        stored version, so a re-run publishes exactly what was stored the first time."""
        has_plan = status in (PlanStatus.COMPLETED, PlanStatus.PARTIAL)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                self.q(
                    "INSERT INTO {s}.plan_versions (plan_id, version, run_id, user_id, parent_version,"
                    " status, status_reason, request, plan_data, agent_results, feedback, timings,"
                    " started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING"
                ),
                (
                    plan_id,
                    version,
                    run_id,
                    user_id,
                    parent_version,
                    status.value,
                    reason,
                    _json(request),
                    _json(plan_data),
                    _json(agent_results),
                    feedback,
                    _json(timings),
                    started_at,
                ),
            )
            stored = await self._one(
                conn,
                "SELECT * FROM {s}.plan_versions WHERE plan_id = %s AND version = %s",
                (plan_id, version),
            )
            assert stored is not None
            plan = await self._one(
                conn,
                self.q(
                    "UPDATE {s}.plans SET status = %s, status_reason = %s, stage = 'finalize',"
                    " current_version = GREATEST(current_version, %s), completed_at = now(),"
                    " completion_percentage = CASE WHEN %s THEN 100 ELSE completion_percentage END,"
                    " updated_at = now() WHERE plan_id = %s AND current_run_id = %s"
                    " RETURNING completion_percentage"
                ),
                (stored["status"], stored["status_reason"], version, has_plan, plan_id, run_id),
            )
            await conn.execute(
                self.q(
                    "UPDATE {s}.runs SET state = 'finished', finished_at = now()"
                    " WHERE run_id = %s AND state = 'active'"
                ),
                (run_id,),
            )
            await conn.execute(
                self.q(
                    "UPDATE {s}.agent_executions SET status = 'skipped', finished_at = now()"
                    " WHERE run_id = %s AND status = 'pending'"
                ),
                (run_id,),
            )
        return {**stored, "completion_percentage": plan["completion_percentage"] if plan else 0}

    async def mark_announced(self, run_id: str) -> float | None:
        """Seconds from the run's acceptance (the command's arrival) to now, when this call
        announced it; None when an earlier attempt did (a finalize that ran twice)."""
        async with self.pool.connection() as conn:  # one statement: autocommit (app.py)
            row = await self._one(
                conn,
                "UPDATE {s}.runs SET announced_at = now() WHERE run_id = %s AND announced_at IS NULL"
                " RETURNING extract(epoch FROM now() - created_at)::float8 AS seconds",
                (run_id,),
            )
        return None if row is None else float(row["seconds"])

    async def claim_stalled(self, older_than: float, limit: int = 50) -> list[str]:
        """Plans to re-check (a replica may have died between two graph steps): running ones
        nobody touched for a while, and finished runs whose version was stored but not yet
        announced. Claiming stamps swept_at, so replicas share the work."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                self.q(
                    "UPDATE {s}.plans SET swept_at = now() WHERE plan_id IN ("
                    " SELECT plan_id FROM {s}.plans p WHERE deleted_at IS NULL"
                    " AND (swept_at IS NULL OR swept_at < now() - make_interval(secs => %s))"
                    " AND ((status = ANY(%s) AND updated_at < now() - make_interval(secs => %s))"
                    "  OR EXISTS (SELECT 1 FROM {s}.runs r WHERE r.plan_id = p.plan_id"
                    "   AND r.state = 'finished' AND r.announced_at IS NULL"
                    "   AND r.finished_at < now() - make_interval(secs => %s)))"
                    " ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING plan_id"
                ),
                (older_than, ACTIVE_STATUSES, older_than, older_than, limit),
            )
            return [r[0] for r in await cur.fetchall()]
