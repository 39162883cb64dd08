"""Real NATS + real Postgres for the planner: the planner runs in-process with its real broker;
the test plays the agent-runner (binds the runners' durables, answers jobs with fake outputs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob, AgentResult, PlanChanged, PlanCreate, PlanEvent
from tripmesh_contracts.plans import AgentName, Place, PlanRequest, PlanStatus
from tripmesh_contracts.rpc import PlanGetRequest, PlanView
from tripmesh_contracts.streams import runner_consumer
from tripmesh_planner.app import PlannerService
from tripmesh_planner.settings import Settings

Responder = Callable[[AgentJob], Awaitable[list[AgentResult]]]

LISBON = Place(
    geoname_id=2267057,
    name="Lisbon",
    country_code="PT",
    country="Portugal",
    latitude=38.72,
    longitude=-9.13,
    timezone="Europe/Lisbon",
    iata="LIS",
)
PORTO = Place(
    geoname_id=2735943,
    name="Porto",
    country_code="PT",
    country="Portugal",
    latitude=41.15,
    longitude=-8.61,
    timezone="Europe/Lisbon",
    iata="OPO",
)


def plan_request(**overrides: Any) -> PlanRequest:
    fields: dict[str, Any] = {
        "title": "Portugal in spring",
        "destinations": [LISBON, PORTO],
        "start_date": date(2026, 5, 1),
        "end_date": date(2026, 5, 4),
        "budget_total": Decimal("2000"),
        "traveler_count": 2,
    }
    fields.update(overrides)
    return PlanRequest(**fields)


def fake_output(job: AgentJob) -> dict[str, Any]:
    """Simple outputs in the shapes the planner reads (test-only stand-ins for agents)."""
    if job.agent is AgentName.BUDGET:
        return {"within_budget": True, "overrun": 0, "total_estimated": 1500}
    if job.agent is AgentName.PLANNING:
        days = [
            {
                "date": f"2026-05-0{i}",
                "day_number": i,
                "destination": "Lisbon" if i < 3 else "Porto",
                "title": f"Day {i}",
                "morning": "walk",
                "afternoon": "museum",
                "evening": "dinner",
            }
            for i in range(1, 4)
        ]  # day 4 left out on purpose: the planner fills it
        return {"itinerary": days, "summary": "Lisbon then Porto"}
    return {"agent": job.agent.value, "round": job.round, "constraints": job.constraints}


def result_for(
    job: AgentJob,
    *,
    ok: bool = True,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    error_kind: str | None = None,
) -> AgentResult:
    return AgentResult(
        user_id=job.user_id,
        plan_id=job.plan_id,
        correlation_id=job.correlation_id,
        job_id=job.id,
        run_id=job.run_id,
        version=job.version,
        agent=job.agent,
        stage=job.stage,
        round=job.round,
        attempt=job.attempt,
        ok=ok,
        output=(output if output is not None else fake_output(job)) if ok else None,
        error=error,
        error_kind=error_kind,
        cost_usd=Decimal("0.001"),
        model="fake/test",
    )


async def answer_ok(job: AgentJob) -> list[AgentResult]:
    return [result_for(job)]


class FakeAgents:
    """Consumes every runner durable; answers jobs of the test's plans with `respond(job)`.
    Jobs of other plans (left over by other tests on a shared server) are acked unanswered."""

    def __init__(self, js: JetStreamContext, respond: Responder = answer_ok) -> None:
        self.js = js
        self.respond = respond
        self.plans: set[str] = set()
        self.jobs: list[AgentJob] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for agent in AgentName:
            spec = runner_consumer(agent)
            sub = await self.js.pull_subscribe_bind(spec.durable, stream=spec.stream)
            self._tasks.append(asyncio.create_task(self._loop(sub)))

    async def _loop(self, sub: Any) -> None:
        while True:
            try:
                msgs = await sub.fetch(16, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                job = AgentJob.model_validate_json(msg.data)
                if job.plan_id in self.plans:
                    self.jobs.append(job)
                    for result in await self.respond(job):
                        await self.publish(result)
                await msg.ack()

    async def publish(self, result: AgentResult) -> None:
        await self.js.publish(
            subjects.agent_result(result.plan_id), result.to_bytes(), headers={"Nats-Msg-Id": result.id}
        )

    def jobs_of(self, plan_id: str, agent: AgentName | None = None) -> list[AgentJob]:
        return [j for j in self.jobs if j.plan_id == plan_id and (agent is None or j.agent is agent)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Liveness bound only: crossing it means something is stuck, never a speed target."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what}")
        await asyncio.sleep(0.1)


class Harness:
    def __init__(self, settings: Settings, nc: Client) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.services: list[PlannerService] = []
        self.agents = FakeAgents(self.js)

    async def start_planner(
        self, *, consume: bool = True, sweep: bool = True, **overrides: Any
    ) -> PlannerService:
        svc = PlannerService(self.settings.model_copy(update=overrides))
        await svc.start(consume=consume, sweep=sweep)
        self.services.append(svc)
        return svc

    @property
    def planner(self) -> PlannerService:
        return self.services[0]

    async def create(self, request: PlanRequest | None = None, user_id: str | None = None) -> PlanCreate:
        cmd = PlanCreate(user_id=user_id or new_id(), plan_id=new_id(), request=request or plan_request())
        self.agents.plans.add(cmd.plan_id)
        await self.send(cmd, subjects.PLAN_CMD_CREATE)
        return cmd

    async def send(self, cmd: Any, subject: str) -> None:
        await self.js.publish(subject, cmd.to_bytes(), headers={"Nats-Msg-Id": cmd.id})

    async def drained(self, stream: str, durable: str) -> None:
        async def empty() -> bool:
            info = await self.js.consumer_info(stream, durable)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(empty, f"{durable} drained")

    async def commands_drained(self) -> None:
        await self.drained("PLAN_COMMANDS", "planner-commands")

    async def results_drained(self) -> None:
        await self.drained("AGENT_RESULTS", "planner-results")

    async def view(self, user_id: str, plan_id: str) -> PlanView | None:
        reply = await self.planner.reads.get(PlanGetRequest(user_id=user_id, plan_id=plan_id))
        return reply.plan

    async def wait_status(self, cmd: PlanCreate, *statuses: PlanStatus, timeout: float = 60.0) -> PlanView:
        wanted = {s.value for s in statuses}

        async def reached() -> bool:
            view = await self.view(cmd.user_id, cmd.plan_id)
            return view is not None and view.status.value in wanted

        await wait_for(reached, f"plan {cmd.plan_id} in {wanted}", timeout)
        view = await self.view(cmd.user_id, cmd.plan_id)
        assert view is not None
        return view

    async def events(self, cmd: PlanCreate) -> list[PlanEvent]:
        """Every event of the plan as stored in PLAN_EVENTS (duplicates would show here)."""
        sub = await self.js.pull_subscribe(
            subjects.plan_events_filter(cmd.user_id, cmd.plan_id), stream="PLAN_EVENTS"
        )
        out: list[PlanEvent] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(100, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                for msg in msgs:
                    out.append(PlanEvent.from_bytes(msg.data))
                    await msg.ack()
        finally:
            await sub.unsubscribe()
        return out

    async def changed(self, plan_id: str) -> PlanChanged | None:
        try:
            msg = await self.js.get_last_msg("PLAN_CHANGES", subjects.plan_changed(plan_id))
        except NotFoundError:
            return None
        assert msg.data is not None
        return PlanChanged.from_bytes(msg.data)

    async def close(self) -> None:
        for svc in self.services:  # first: no job is published after the fake agents stop
            await svc.stop()
        await self.agents.stop()


@pytest.fixture
def planner_settings(nats_url: str, fresh_database_url: str) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=fresh_database_url,
        sweeper_interval_seconds=0.3,
        stall_after_seconds=2.0,
        unpublished_after_seconds=1.0,
        drain_timeout_seconds=5.0,
        command_workers=4,
        result_workers=8,
        db_pool_size=16,
        lock_timeout_seconds=30.0,
    )


@pytest.fixture
async def harness(planner_settings: Settings, nats_url: str) -> AsyncIterator[Harness]:
    nc = await nats.connect(nats_url)
    h = Harness(planner_settings, nc)
    try:
        await h.start_planner()
        await h.agents.start()
        yield h
    finally:
        await h.close()
        await nc.close()
