"""Shared pieces of the runner's integration tests: real NATS (the devstack plugin's session
`nats_url`), a real trip on real places, and readers for the streams the runner writes."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NotFoundError
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.messages import AgentJob, AgentResult, UsageEvent
from tripmesh_contracts.plans import AgentName, PlanRequest, Stage
from tripmesh_kit.bus import Bus, make_broker, provision
from tripmesh_places import resolve

# tests/support: the OpenAI-compatible stub and shared helpers (tests are not a package)
SUPPORT = Path(__file__).resolve().parents[1] / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

STAGE_OF: dict[AgentName, Stage] = {
    AgentName.LOCATION: Stage.RESEARCH,
    AgentName.WEATHER: Stage.RESEARCH,
    AgentName.TRANSPORT: Stage.OPTIONS,
    AgentName.ACCOMMODATION: Stage.OPTIONS,
    AgentName.ACTIVITY: Stage.OPTIONS,
    AgentName.BUDGET: Stage.BUDGET,
    AgentName.PLANNING: Stage.PLANNING,
}


def lisbon_trip(start: date | None = None, days: int = 5) -> PlanRequest:
    places = {name: resolve(name).place for name in ("Lisbon", "Porto", "London")}
    assert all(places.values()), places
    start = start or date(2027, 5, 3)
    return PlanRequest(
        title="Lisbon and Porto for food lovers",
        description="Seafood, pastries and a day on the Douro",
        destinations=[places["Lisbon"], places["Porto"]],  # type: ignore[list-item]
        origin=places["London"],
        start_date=start,
        end_date=start + timedelta(days=days - 1),
        budget_total=Decimal("3000"),
        budget_currency="EUR",
        traveler_count=2,
        preferences={"interests": ["food", "history"], "pace": "relaxed"},
    )


def make_job(
    agent: AgentName,
    request: PlanRequest,
    *,
    user_id: str,
    plan_id: str,
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> AgentJob:
    return AgentJob(
        user_id=user_id,
        plan_id=plan_id,
        run_id=fields.pop("run_id", new_id()),
        version=1,
        agent=agent,
        stage=STAGE_OF[agent],
        request=request,
        context=context or {},
        **fields,
    )


async def wait_for(probe: Callable[[], Awaitable[Any]], timeout: float = 120.0) -> Any:
    """Poll `probe` until it returns something truthy. The timeout is a liveness bound (the
    runner is stuck), never a speed assertion."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s (liveness bound)")
        await asyncio.sleep(0.1)


@dataclass
class Streams:
    """Reads what the runner wrote, without consuming it."""

    bus: Bus

    async def results(self, plan_id: str) -> list[AgentResult]:
        return [
            AgentResult.from_bytes(d)
            for d in await self._all(streams.AGENT_RESULTS.name, subjects.agent_result(plan_id))
        ]

    async def usage(self, user_id: str) -> list[UsageEvent]:
        return [
            UsageEvent.from_bytes(d) for d in await self._all(streams.USAGE.name, subjects.usage(user_id))
        ]

    async def count(self, stream: str, subject: str) -> int:
        info = await self.bus.js.stream_info(stream, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def job_still_queued(self, seq: int) -> bool:
        """A work-queue message is deleted when acked: present = nobody acked it yet."""
        try:
            await self.bus.js.get_msg(streams.AGENT_JOBS.name, seq)
            return True
        except NotFoundError:
            return False

    async def job_acked(self, seq: int) -> bool:
        return not await self.job_still_queued(seq)

    async def _all(self, stream: str, subject: str) -> list[bytes]:
        # direct gets by sequence: AGENT_RESULTS is a work queue whose filter the planner's
        # durable already owns, so no second consumer may read it
        info = await self.bus.js.stream_info(stream, subjects_filter=subject)
        if not (info.state.subjects or {}).get(subject):
            return []
        out, seq = [], 0
        while True:
            try:
                msg = await self.bus.js.get_msg(stream, seq + 1, subject=subject, next=True)
            except NotFoundError:
                return out
            out.append(msg.data or b"")
            seq = msg.seq

    async def wait_results(self, plan_ids: list[str], timeout: float = 120.0) -> dict[str, AgentResult]:
        """Liveness bound only: waits until every plan has a result (fails if stuck)."""

        async def all_there() -> dict[str, AgentResult] | None:
            found = {}
            for plan_id in plan_ids:
                results = await self.results(plan_id)
                if not results:
                    return None
                found[plan_id] = results[0]
            return found

        return await wait_for(all_there, timeout)

    async def wait_job_results(
        self, plan_id: str, job_ids: list[str], timeout: float = 120.0
    ) -> dict[str, AgentResult]:
        """The result of each job (by job id) once all of them are on the plan's subject."""

        async def all_there() -> dict[str, AgentResult] | None:
            by_job = {r.job_id: r for r in await self.results(plan_id)}
            return by_job if all(j in by_job for j in job_ids) else None

        return await wait_for(all_there, timeout)

    until = staticmethod(wait_for)


@pytest.fixture
def trip() -> PlanRequest:
    return lisbon_trip()


@pytest.fixture
async def new_job(bus: Bus) -> AsyncIterator[Callable[..., AgentJob]]:
    """`make_job`, remembering each job so its results and usage are purged afterwards (the
    planner's and the ledger's durables on the shared server must not see them later)."""
    made: list[AgentJob] = []

    def factory(*args: Any, **kwargs: Any) -> AgentJob:
        job = make_job(*args, **kwargs)
        made.append(job)
        return job

    yield factory
    for job in made:
        await bus.js.purge_stream(streams.AGENT_RESULTS.name, subject=subjects.agent_result(job.plan_id))
        await bus.js.purge_stream(streams.USAGE.name, subject=subjects.usage(job.user_id))


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    broker = make_broker(nats_url, "agent-runner-test")
    await broker.connect()
    test_bus = Bus(broker)
    await provision(test_bus.js)
    yield test_bus
    with contextlib.suppress(Exception):
        await broker.stop()


@pytest.fixture
def stream_reader(bus: Bus) -> Streams:
    return Streams(bus)
