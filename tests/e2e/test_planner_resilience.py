"""Issue #4 when things go wrong, on a stack of this module's own: two planner replicas, and
one agent-runner whose configuration each test chooses (a replica is replaced when it must
change: all jobs of one agent type share one durable, so a failing agent cannot sit next to
a working one of the same type).

- an agent that always fails (its model points at a closed port) -> `partial`, its section
  degraded with the reason;
- the planning agent fails -> `failed`, with the reason;
- cancel while the run waits for its research jobs (no runner is up, so the run is certainly
  mid-way) -> `cancelled`, and the runner started afterwards skips the queued jobs.

A planner SIGKILLed amid many plans (formerly here, 50 plans) is the reliability battery's
planner crash: tests/chaos/test_planner_crash.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from client import SseEvent, UserFactory, users_on
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

AGENTS = {"location", "weather", "transport", "accommodation", "activity", "budget", "planning"}


def closed_port() -> int:
    """A port nobody listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broken_agent_env(agent: str) -> dict[str, str]:
    """`agent`'s model is a provider that is down; the others keep the offline model."""
    up = agent.upper()
    return {
        "AGENT_RUNNER_MODEL_PROVIDER": "local",  # the fake key below must not pick a provider
        "OPENAI_API_KEY": "sk-e2e-not-a-key",
        f"{up}_AGENT_MODEL": "openai/broken",
        f"{up}_AGENT_API_BASE": f"http://127.0.0.1:{closed_port()}/v1",
        f"AGENT_RUNNER_{up}_NUM_RETRIES": "0",
    }


class Runners:
    """The module's one agent-runner, replaced by a fresh replica when its env must change
    (a new runner process costs seconds, and its first jobs build the tools' indexes)."""

    def __init__(self, stack: Stack, env: dict[str, str]) -> None:
        self.stack = stack
        self.index: int | None = 0
        self.env = dict(env)

    def use(self, env: dict[str, str]) -> int:
        if (
            self.index is not None
            and self.env == env
            and self.stack.replica("agent-runner", self.index).running
        ):
            return self.index
        self.stop()
        self.index, self.env = self.stack.add_replica("agent-runner", env=env), dict(env)
        return self.index

    def stop(self) -> None:
        if self.index is not None:
            assert self.stack.terminate("agent-runner", self.index) == 0
        self.index = None


FIRST_RUNNER_ENV = broken_agent_env("activity")  # what the first test needs


@pytest.fixture(scope="module")
def own_stack(stack_factory: Callable[..., Stack]) -> Stack:
    services = default_services(
        free_ports=True, replicas={"planner": 2}, replica_env={"agent-runner": [FIRST_RUNNER_ENV]}
    )
    return stack_factory("resilience", services)


@pytest.fixture(scope="module")
def runners(own_stack: Stack) -> Iterator[Runners]:
    yield Runners(own_stack, FIRST_RUNNER_ENV)


@pytest.fixture
async def user_factory(own_stack: Stack) -> AsyncIterator[UserFactory]:
    async with httpx.AsyncClient(base_url=own_stack.gateway_url, timeout=30) as http:
        yield users_on(http)


def kinds(events: list[SseEvent]) -> list[str]:
    return [e.event for e in events]


async def test_an_agent_that_always_fails_leaves_its_section_degraded_and_the_plan_partial(
    runners: Runners, user_factory: UserFactory
) -> None:
    runners.use(broken_agent_env("activity"))
    user = await user_factory("partial")
    plan_id = await user.create_plan()

    events = await user.events(plan_id)

    assert kinds(events)[-1] == "partial", kinds(events)
    failed = [e.data for e in events if e.event == "agent_failed"]
    assert [(f["agent"], f["data"]["attempt"]) for f in failed] == [("activity", 2)]  # retried once
    completed = {e.data["agent"] for e in events if e.event == "agent_completed"}
    assert completed == AGENTS - {"activity"}
    plan = await user.plan(plan_id)
    assert plan["status"] == "partial" and plan["status_reason"] == "degraded sections: activity"
    sections = plan["plan_data"]["sections"]
    assert sections["activity"]["status"] == "degraded"
    assert sections["activity"]["reason"] == failed[0]["data"]["reason"]
    assert {n for n, s in sections.items() if s["status"] == "ok"} == AGENTS - {"activity", "planning"}
    assert len(plan["plan_data"]["itinerary"]) == 6  # the plan is still written
    r = await user.get(f"/api/v1/plans/{plan_id}/versions/1")
    assert r.status_code == 200 and r.json()["status"] == "partial"
    activity = r.json()["agent_results"]["activity"]
    assert (activity["status"], activity["attempt"]) == ("degraded", 2)


async def test_a_failing_planning_agent_fails_the_plan_with_the_reason(
    runners: Runners, user_factory: UserFactory
) -> None:
    runners.use(broken_agent_env("planning"))
    user = await user_factory("failed")
    plan_id = await user.create_plan()

    events = await user.events(plan_id)

    assert kinds(events)[-1] == "failed", kinds(events)
    assert [e.data["agent"] for e in events if e.event == "agent_failed"] == ["planning"]
    plan = await user.plan(plan_id)
    assert plan["status"] == "failed"
    reason = plan["status_reason"] or ""
    assert reason.startswith("planning agent failed: ") and len(reason) > len("planning agent failed: ")
    assert events[-1].data["message"] == reason
    assert plan["plan_data"]["itinerary"] == []
    versions = await user.versions(plan_id)
    assert [(v["version"], v["status"]) for v in versions] == [(1, "failed")]


async def runner_metric(stack: Stack, index: int, agent: str, outcome: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(stack.url("agent-runner", index) + "/metrics")).text
    line = f'tripmesh_agent_jobs_total{{agent="{agent}",outcome="{outcome}"}} '
    values = [float(x.split(" ")[-1]) for x in text.splitlines() if x.startswith(line)]
    return sum(values)


async def test_cancel_mid_run_stops_the_run_and_runners_skip_its_queued_jobs(
    own_stack: Stack, runners: Runners, user_factory: UserFactory
) -> None:
    runners.stop()  # research jobs will wait in their durables: the run is surely mid-way
    user = await user_factory("canceller")
    plan_id = await user.create_plan()
    started = await user.events_until(
        plan_id, lambda e: e.event == "agent_started" and e.data["agent"] in {"location", "weather"}
    )

    r = await user.post(f"/api/v1/plans/{plan_id}/cancel", json={"reason": "plans changed"})
    assert r.status_code == 202, r.text
    rest = await user.events(plan_id, last_event_id=started[-1].id)

    assert kinds(rest)[-1] == "cancelled", kinds(rest)
    stages = [e.data["stage"] for e in started + rest if e.event == "stage_started"]
    assert stages == ["intake", "research"], stages  # no new jobs after the cancel
    plan = await user.plan(plan_id)
    assert (plan["status"], plan["status_reason"]) == ("cancelled", "plans changed")
    versions = await user.versions(plan_id)
    assert [(v["version"], v["status"]) for v in versions] == [(1, "cancelled")]

    # A runner that comes up now finds the cancelled run's jobs queued and skips them.
    index = runners.use({})
    for _ in range(200):
        skipped = [await runner_metric(own_stack, index, a, "cancelled") for a in ("location", "weather")]
        if skipped == [1, 1]:
            break
        await asyncio.sleep(0.25)
    assert skipped == [1, 1]
    assert await runner_metric(own_stack, index, "location", "ok") == 0
    r = await user.get("/api/v1/costs/summary", params={"plan_id": plan_id})
    assert r.status_code == 200 and r.json()["calls"] == 0, r.text  # no LLM call was paid for
    assert (await user.plan(plan_id))["status"] == "cancelled"
