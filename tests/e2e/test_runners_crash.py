"""Issue #5: agent-runner pools at scale, with a crash.

Three runner replicas as ops would run them - two serving transport+accommodation, one for
the other five agent types - under the real stack (devstack's Stack, as `make up`). 30 plans
go in through the public API; while they run, one transport+accommodation replica is
SIGKILLed with jobs in hand (its log says which: `agent_job_started` without
`agent_job_done`). The local model answers each call after 300 ms, so the kill lands in the
middle of LLM calls, and the shared cache is off (identical plans would hit it).

Then: every plan is terminal; each plan has one version; the jobs the dead replica held were
redelivered and finished by the surviving replica; and in the planner's own records (the
oracle) every agent's result was applied once per stage round - no section twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from client import TERMINAL, User, plan_body
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PLANS = 30
USERS = 3
LIVENESS = 420.0
"""Seconds for all plans to end: a stuck system crosses it, a slow one does not (the dead
replica's jobs come back after AckWait, 30 s)."""
POOLS = [
    {"AGENT_RUNNER_AGENTS": "transport,accommodation"},  # index 0: the one killed
    {"AGENT_RUNNER_AGENTS": "transport,accommodation"},
    {"AGENT_RUNNER_AGENTS": "location,weather,activity,budget,planning"},
]


@pytest.fixture(scope="module")
def runner_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("tripmesh-runners")
    console = (data / "console.log").open("w")
    services = default_services(
        free_ports=True,
        replicas={"agent-runner": len(POOLS)},
        replica_env={"agent-runner": POOLS},
        env={
            "agent-runner": {
                "AGENT_RUNNER_LOCAL_MODEL_LATENCY_MS": "300",
                "AGENT_RUNNER_CACHE_ENABLED": "false",
            }
        },
    )
    stack = Stack(data / "data", services, console=console, env={"LOG_FORMAT": "json"})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        console.close()


def job_log(path: Path) -> list[dict[str, Any]]:
    """The replica's job lines (`agent_job_started` / `agent_job_done`), in order."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if '"agent_job_' not in raw:
            continue
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def started_and_done(path: Path) -> tuple[set[str], set[str]]:
    started, done = set(), set()
    for line in job_log(path):
        (started if line.get("event") == "agent_job_started" else done).add(line.get("job_id"))
    return started, done


async def kill_with_jobs_in_hand(stack: Stack, index: int) -> set[str]:
    """SIGKILL the replica mid-run - it has finished a few jobs and holds at least two - and
    return the ids of the jobs it held."""
    log = stack.log_path("agent-runner", index)
    deadline = time.monotonic() + LIVENESS
    while time.monotonic() < deadline:
        started, done = started_and_done(log)
        if len(done) >= 4 and len(started - done) >= 2:
            stack.kill("agent-runner", index)
            started, done = started_and_done(log)
            return started - done
        await asyncio.sleep(0.05)
    raise AssertionError("the replica never held two jobs mid-run (liveness bound)")


async def test_thirty_plans_survive_a_runner_killed_mid_call(runner_stack: Stack, record_timing: Any) -> None:
    stack = runner_stack
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        users = [
            User(http, f"crash{i}@example.com", f"crash{i}", f"long-enough-passphrase-{i}")
            for i in range(USERS)
        ]
        for user in users:
            await user.signup_and_login()

        started = time.monotonic()
        plans: dict[str, User] = {}
        for n in range(PLANS):
            user = users[n % USERS]
            body = plan_body(title=f"Crash test trip {n}", start_date=f"2027-06-{1 + n % 20:02d}",
                             end_date=f"2027-06-{4 + n % 20:02d}")  # fmt: skip
            r = await user.post("/api/v1/plans", json=body)
            assert r.status_code == 202, r.text
            plans[r.json()["id"]] = user

        held = await kill_with_jobs_in_hand(stack, 0)

        async def statuses() -> dict[str, str]:
            out = {}
            for plan_id, user in plans.items():
                r = await user.get(f"/api/v1/plans/{plan_id}")
                assert r.status_code == 200, r.text
                out[plan_id] = r.json()["status"]
            return out

        deadline = time.monotonic() + LIVENESS
        while not set((current := await statuses()).values()) <= TERMINAL:
            assert time.monotonic() < deadline, f"not all plans ended (liveness bound): {current}"
            await asyncio.sleep(1.0)
        record_timing("runners_30_plans_with_a_kill_seconds", time.monotonic() - started)

        # every plan ended well: the crash cost time, not sections
        assert set(current.values()) <= {"completed", "partial"}, current
        for plan_id, user in plans.items():
            r = await user.get(f"/api/v1/plans/{plan_id}/versions")
            assert r.status_code == 200, r.text
            assert [v["version"] for v in r.json()["items"]] == [1], r.text
            plan = (await user.get(f"/api/v1/plans/{plan_id}")).json()
            assert plan["version"] == 1

    # the jobs the dead replica held came back and were finished by the surviving replica
    survivor = job_log(stack.log_path("agent-runner", 1))
    redelivered = {line["job_id"] for line in survivor
                   if line.get("event") == "agent_job_started" and line.get("delivered", 1) >= 2}  # fmt: skip
    assert held and held <= redelivered, (held, redelivered)

    # the planner's records: each job's result applied once, every section once per round
    with psycopg.connect(stack.database_url) as db:
        rows = db.execute(
            "SELECT plan_id, agent, stage, round, job_id, status FROM planner.agent_executions"
            " WHERE plan_id = ANY(%s)", (list(plans),)
        ).fetchall()  # fmt: skip
    completed: dict[tuple[str, str, str, int], list[str]] = {}
    for plan_id, agent, stage, round_, job_id, status in rows:
        if status == "completed":
            completed.setdefault((plan_id, agent, stage, round_), []).append(job_id)
    assert all(len(jobs) == 1 for jobs in completed.values()), {
        k: v for k, v in completed.items() if len(v) > 1
    }
    by_job = {job_id: status for *_, job_id, status in rows}
    assert all(by_job.get(job_id) == "completed" for job_id in held), {j: by_job.get(j) for j in held}
    for plan_id, status in current.items():
        agents = {agent for (p, agent, _, _) in completed if p == plan_id}
        if status == "completed":
            assert len(agents) == 7, (plan_id, agents)
