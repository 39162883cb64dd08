"""Durable timers: job deadlines, unpublished jobs, stalled plans (ARCHITECTURE.md §9).

Runs in every replica; safe concurrently: overdue rows are taken `FOR UPDATE SKIP LOCKED`,
stalled plans are claimed by stamping `swept_at` under SKIP LOCKED, and every graph step
goes through `engine.advance` (the plan's advisory lock + re-check).
"""

from __future__ import annotations

import asyncio
import contextlib

from tripmesh_kit.logging import get_logger
from tripmesh_kit.loops import pause

from tripmesh_planner import metrics
from tripmesh_planner.announce import announce
from tripmesh_planner.engine import Engine

log = get_logger(__name__)


class Sweeper:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rt = engine.rt
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """One pass; returns how many jobs or plans it acted on."""
        rt, settings = self.rt, self.rt.settings
        acted = 0
        touched: set[str] = set()
        for applied in await rt.executions.expire_overdue(settings.attempts_for, settings.deadline_for):
            assert applied.row is not None
            log.warning(
                "agent_job_overdue",
                job_id=applied.row["job_id"],
                agent=applied.row["agent"],
                attempt=applied.row["attempt"],
                outcome=applied.kind,
            )
            metrics.JOBS_EXPIRED.labels(agent=applied.row["agent"], outcome=applied.kind).inc()
            await announce(rt, applied)
            touched.add(applied.row["plan_id"])
            acted += 1
        unpublished = await rt.executions.unpublished(settings.unpublished_after_seconds)
        await rt.publish_recorded(unpublished)
        acted += len(unpublished)
        touched.update(await rt.store.claim_stalled(settings.stall_after_seconds))
        for plan_id in sorted(touched):
            try:
                await self.engine.advance(plan_id)
                acted += 1
            except Exception as exc:  # one plan's trouble must not stop the sweep
                log.warning(
                    "sweep_advance_failed", plan_id=plan_id, error=f"{type(exc).__name__}: {exc}"[:300]
                )
        return acted

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # the database may be down: try again next interval
                log.warning("sweep_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await pause(self.rt.settings.sweeper_interval_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="planner-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
