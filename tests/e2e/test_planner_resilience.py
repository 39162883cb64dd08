"""Issue #4 when things go wrong, on a stack of this module's own: two planner replicas, and
one agent-runner whose configuration each test chooses (a replica is replaced when it must
change: all jobs of one agent type share one durable, so a failing agent cannot sit next to
a working one of the same type).

- an agent that always fails (its model points at a closed port) -> `partial`, its section
  degraded with the reason;
- the planning agent fails -> `failed`, with the reason;
- cancel while the run waits for its research jobs (no runner is up, so the run is certainly
  mid-way) -> `cancelled`, and the runner started afterwards skips the queued jobs;
- 50 plans, one planner SIGKILLed while they run, restarted -> every plan terminal with one
  version, no duplicated event, no forked checkpoint (the planner's tables are the oracle).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import nats
import psycopg
import pytest
from client import TERMINAL, SseEvent, User, UserFactory, users_on
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

AGENTS = {"location", "weather", "transport", "accommodation", "activity", "budget", "planning"}
CRASH_PLANS = 50


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


# --- two planners, one SIGKILLed in the middle of 50 plans ----------------------------------


async def planner_steps(stack: Stack, index: int) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(stack.url("planner", index) + "/metrics")).text
    return sum(
        float(x.split(" ")[-1])
        for x in text.splitlines()
        if x.startswith("tripmesh_planner_graph_invocations_total{")
    )


async def statuses(users: list[User]) -> dict[str, str]:
    out: dict[str, str] = {}
    for user in users:
        r = await user.get("/api/v1/plans", params={"limit": 100})
        assert r.status_code == 200, r.text
        out.update({p["id"]: p["status"] for p in r.json()["items"]})
    return out


async def consumers_drained(js: Any, *durables: tuple[str, str]) -> None:
    """Until the planner has settled every command and result, redeliveries of what the
    killed replica held included (its unacked messages come back after AckWait)."""
    for _ in range(1200):
        infos = [await js.consumer_info(stream, durable) for stream, durable in durables]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"planner consumers never drained: {infos}")


async def stored_events(js: Any, plan_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Every event of these plans as PLAN_EVENTS stores it, in stream order."""
    sub = await js.subscribe("plans.evt.>", stream="PLAN_EVENTS", ordered_consumer=True)
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in plan_ids}
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            event = json.loads(msg.data)
            if event.get("plan_id") in out:
                out[event["plan_id"]].append(event)
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


def planner_tables(database_url: str, plan_ids: list[str]) -> dict[str, Any]:
    """The planner's own records of these plans (an oracle read in the test, not an API)."""
    with psycopg.connect(database_url) as conn:
        versions = conn.execute(
            "SELECT plan_id, version, parent_version, status FROM planner.plan_versions"
            " WHERE plan_id = ANY(%s)",
            (plan_ids,),
        ).fetchall()
        runs = conn.execute(
            "SELECT plan_id, state, version FROM planner.runs WHERE plan_id = ANY(%s)", (plan_ids,)
        ).fetchall()
        final_rows = conn.execute(
            "SELECT run_id, stage, round, agent, count(*) FROM planner.agent_executions"
            " WHERE plan_id = ANY(%s) AND status IN ('completed', 'failed')"
            " GROUP BY run_id, stage, round, agent",
            (plan_ids,),
        ).fetchall()
        open_rows = conn.execute(
            "SELECT count(*) FROM planner.agent_executions WHERE plan_id = ANY(%s) AND status = 'pending'",
            (plan_ids,),
        ).fetchone()
        forks = conn.execute(
            "SELECT thread_id, parent_checkpoint_id, count(*) FROM planner_checkpoints.checkpoints"
            " WHERE split_part(thread_id, ':', 1) = ANY(%s) AND parent_checkpoint_id IS NOT NULL"
            " GROUP BY thread_id, checkpoint_ns, parent_checkpoint_id HAVING count(*) > 1",
            (plan_ids,),
        ).fetchall()
        threads = conn.execute(
            "SELECT count(DISTINCT thread_id) FROM planner_checkpoints.checkpoints"
            " WHERE split_part(thread_id, ':', 1) = ANY(%s)",
            (plan_ids,),
        ).fetchone()
    return {
        "versions": versions,
        "runs": runs,
        "final_rows": final_rows,
        "open_rows": open_rows[0] if open_rows else None,
        "forks": forks,
        "threads": threads[0] if threads else None,
    }


async def test_sigkill_of_a_planner_amid_50_plans_leaves_every_plan_finished_once(
    own_stack: Stack, runners: Runners, user_factory: UserFactory, record_timing: Any
) -> None:
    runners.use({})
    users = [await user_factory(f"crowd{i}") for i in range(5)]
    created = await asyncio.gather(*(users[i % 5].create_plan() for i in range(CRASH_PLANS)))
    owner = {plan_id: users[i % 5] for i, plan_id in enumerate(created)}

    # Kill planner 0 once it has been driving plans and many are still running.
    for _ in range(600):
        now = await statuses(users)
        finished = sum(1 for s in now.values() if s in TERMINAL)
        if finished >= 5 and await planner_steps(own_stack, 0) > 0:
            break
        await asyncio.sleep(0.1)
    running_at_kill = [p for p, s in now.items() if s not in TERMINAL]
    own_stack.kill("planner", 0)
    assert len(running_at_kill) >= 10, now  # the kill really hit plans in the middle
    own_stack.start_replica("planner", 0)

    ends = await asyncio.gather(*(owner[p].events(p, timeout=300) for p in created))

    record_timing("sigkill_50_plans_running_at_kill", len(running_at_kill))
    for plan_id, events in zip(created, ends, strict=True):
        assert kinds(events)[-1] == "completed", (plan_id, kinds(events))
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids))
        done = sorted(e.data["agent"] for e in events if e.event == "agent_completed")
        assert done == sorted(AGENTS), (plan_id, done)  # each result announced once
        assert sum(1 for e in events if e.event in TERMINAL) == 1
    for plan_id in created:
        versions = await owner[plan_id].versions(plan_id)
        assert [(v["version"], v["parent_version"], v["status"]) for v in versions] == [
            (1, None, "completed")
        ]
        assert set(versions[0]["agent_results"]) == AGENTS

    # The stream as stored, once the planner has settled everything (late redeliveries too):
    # each plan's last event is its terminal one, and no event was published twice.
    nc = await nats.connect(own_stack.nats_url)
    try:
        js = nc.jetstream()
        await consumers_drained(
            js, ("PLAN_COMMANDS", "planner-commands"), ("AGENT_RESULTS", "planner-results")
        )
        stored = await stored_events(js, set(created))
    finally:
        await nc.close()
    for plan_id, plan_events in stored.items():
        stored_kinds = [e["kind"] for e in plan_events]
        assert stored_kinds[-1] == "completed" and stored_kinds.count("completed") == 1, stored_kinds
        assert len({e["id"] for e in plan_events}) == len(plan_events), stored_kinds
        for agent in AGENTS:
            mine = [e["kind"] for e in plan_events if e["agent"] == agent]
            assert mine == ["agent_started", "agent_completed"], (plan_id, agent, mine)

    tables = await asyncio.to_thread(planner_tables, own_stack.database_url, created)
    assert sorted(v[0] for v in tables["versions"]) == sorted(created)  # one version each
    assert {(v[1], v[2], v[3]) for v in tables["versions"]} == {(1, None, "completed")}
    assert sorted(r[0] for r in tables["runs"]) == sorted(created)
    assert {(r[1], r[2]) for r in tables["runs"]} == {("finished", 1)}
    assert {row[4] for row in tables["final_rows"]} == {1}  # one final outcome per job slot
    assert len(tables["final_rows"]) == CRASH_PLANS * len(AGENTS)  # no budget loop: 7 per run
    assert tables["open_rows"] == 0
    assert tables["forks"] == []  # no checkpoint has two children: no step ran twice
    assert tables["threads"] == CRASH_PLANS
