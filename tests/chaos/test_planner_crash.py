"""Issue #12, test 6 - planner crash: two planner replicas, one SIGKILLed every 10 s.

PR tier: 100 plans (full: 300), half of them revised at once (`enqueue`: the revision runs
after the first run), so each plan has one or two versions; every 10 s one planner replica
(alternating) is SIGKILLed and started again, until every plan has settled. Agents use the
deterministic local model. Oracles, read from the stores:
- every plan terminal, with all its versions (no run left queued or active);
- each agent job slot has exactly one final outcome (planner.agent_executions), none pending;
- version history without gaps or duplicates: versions 1..n, each parent the one before,
  one run per version;
- `plans.changed` once per version (an ordered consumer on PLAN_CHANGES from the start);
- no event stored twice, one terminal event per version, each agent announced once per run;
- no forked checkpoint (no graph step ran twice).
Folds tests/e2e/test_planner_resilience.py's SIGKILL-a-planner-amid-50-plans test.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest
from _stacks_b import TERMINAL, User, plan_body, query, running_stack, users_on
from report import ChaosReport
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

AGENTS = {"location", "weather", "transport", "accommodation", "activity", "budget", "planning"}
KILL_EVERY = 10.0


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    services = default_services(free_ports=True, replicas={"planner": 2})
    # Job deadlines far above the queueing of 100 plans on one runner: at the default 60 s,
    # on two shared cores, jobs waiting in the queue went overdue and sections degraded
    # (300 overdue jobs, 10 plans partial in one run) - runner throughput, not a planner crash.
    env = {"PLANNER_AGENT_DEADLINE_SECONDS": "900", "PLANNER_AGENT_DEADLINES": '{"planning": 900}'}
    with running_stack(tmp_path_factory.mktemp("chaos-planner"), services, env) as stack:
        yield stack


async def collect_changes(js: Any, seen: list[dict[str, Any]], stop: asyncio.Event) -> None:
    """Every message PLAN_CHANGES stores from now on (it keeps only the last per subject,
    so the count per version is observed live)."""
    sub = await js.subscribe(
        "plans.changed.>", stream="PLAN_CHANGES", ordered_consumer=True, deliver_policy="new"
    )
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=1)
            except TimeoutError:
                continue
            body = json.loads(msg.data)
            seen.append({"plan_id": body["plan_id"], "version": body["version"], "id": body["id"]})
    finally:
        await sub.unsubscribe()


async def ready(stack: Stack, index: int) -> bool:
    if not stack.replica("planner", index).running:
        return False
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(stack.url("planner", index) + "/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def kill_loop(stack: Stack, report: ChaosReport, stop: asyncio.Event) -> tuple[int, int]:
    """Every KILL_EVERY s, SIGKILL one planner replica (alternating) and start it again - when
    both are ready. On two loaded cores a planner takes longer than 20 s to start, so killing
    blindly every 10 s would leave no planner at all: a total outage, not a replica crash."""
    kills = skipped = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), KILL_EVERY)
            break
        except TimeoutError:
            pass
        if not (await ready(stack, 0) and await ready(stack, 1)):
            skipped += 1
            continue
        index = kills % 2
        await asyncio.to_thread(stack.kill, "planner", index)
        report.fault("sigkill", target=f"planner#{index}")
        kills += 1
        await asyncio.to_thread(stack.start_replica, "planner", index, False)
    return kills, skipped


async def settled(stack: Stack, expected: dict[str, int], timeout: float) -> dict[str, tuple[str, int]]:
    """Each plan's (status, current_version) once all reached their expected version with no
    run queued or active, or the timeout passed (a liveness bound)."""
    deadline = time.monotonic() + timeout
    ids = list(expected)
    while True:
        rows = await query(
            stack.database_url,
            "SELECT p.plan_id, p.status, p.current_version,"
            " (SELECT count(*) FROM planner.runs r"
            "  WHERE r.plan_id = p.plan_id AND r.state IN ('queued', 'active'))"
            " FROM planner.plans p WHERE p.plan_id = ANY(%s)",
            ids,
        )
        state = {r[0]: (r[1], int(r[2])) for r in rows}
        done = all(r[1] in TERMINAL and int(r[2]) >= expected[r[0]] and int(r[3]) == 0 for r in rows) and len(
            rows
        ) == len(ids)
        if done or time.monotonic() > deadline:
            return state
        await asyncio.sleep(1.0)


async def stored_events(js: Any, plan_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    sub = await js.subscribe("plans.evt.>", stream="PLAN_EVENTS", ordered_consumer=True)
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in plan_ids}
    try:
        while True:
            msg = await sub.next_msg(timeout=10)
            event = json.loads(msg.data)
            if event.get("plan_id") in out:
                out[event["plan_id"]].append(event)
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


async def test_planner_sigkills_lose_and_double_nothing(crash_stack: Stack, tier: str) -> None:
    # PR tier: the counts took ~50 min for the battery on this 2-core machine; CI's make test
    # must stay under ~40 min. The full tier keeps the counts; reports say `reduced_from`.
    plans = 40 if tier == "pr" else 300
    stack = crash_stack
    report = ChaosReport(
        "planner_crash",
        tier=tier,
        plans=plans,
        revised=plans // 2,
        planner_replicas=2,
        kill_every_s=KILL_EVERY,
        **({"reduced_from": {"plans": 100}} if tier == "pr" else {}),
    )
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    changes: list[dict[str, Any]] = []
    stop_changes, stop_kills = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(collect_changes(js, changes, stop_changes))
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
            users: list[User] = [await users_on(http)(f"crash{i}") for i in range(5)]
            killer = asyncio.create_task(kill_loop(stack, report, stop_kills))
            started = time.monotonic()

            async def create(n: int) -> tuple[str, int, float]:
                user = users[n % 5]
                posted = time.monotonic()
                plan_id = await user.create_plan(**plan_body(title=f"Crash {n}"))
                if n % 2 == 0:  # revised at once: the revision runs after the first run
                    r = await user.put(
                        f"/api/v1/plans/{plan_id}",
                        json={"feedback": "more museums please", "multitask_strategy": "enqueue"},
                    )
                    assert r.status_code == 202, r.text
                    return plan_id, 2, posted
                return plan_id, 1, posted

            created = await asyncio.gather(*(create(n) for n in range(plans)))
            expected = {p: v for p, v, _ in created}
            state = await settled(stack, expected, timeout=900)
            elapsed = time.monotonic() - started
            stop_kills.set()
            kills, skipped = await killer
        await asyncio.to_thread(stack.wait_ready)  # both replicas up again before the drain
        await asyncio.sleep(3.0)  # late plans.changed / events of the last steps
        stop_changes.set()
        await watcher

        ids = list(expected)
        stuck = [p for p in ids if state.get(p, ("?", 0))[0] not in TERMINAL or state[p][1] < expected[p]]
        versions = await query(
            stack.database_url,
            "SELECT plan_id, version, parent_version, status FROM planner.plan_versions"
            " WHERE plan_id = ANY(%s)",
            ids,
        )
        runs = await query(
            stack.database_url,
            "SELECT plan_id, state, version FROM planner.runs WHERE plan_id = ANY(%s)",
            ids,
        )
        final_rows = await query(
            stack.database_url,
            "SELECT run_id, stage, round, agent, count(*) FROM planner.agent_executions"
            " WHERE plan_id = ANY(%s) AND status IN ('completed', 'failed')"
            " GROUP BY run_id, stage, round, agent",
            ids,
        )
        pending = await query(
            stack.database_url,
            "SELECT count(*) FROM planner.agent_executions WHERE plan_id = ANY(%s) AND status = 'pending'",
            ids,
        )
        forks = await query(
            stack.database_url,
            "SELECT thread_id, count(*) FROM planner_checkpoints.checkpoints"
            " WHERE split_part(thread_id, ':', 1) = ANY(%s) AND parent_checkpoint_id IS NOT NULL"
            " GROUP BY thread_id, checkpoint_ns, parent_checkpoint_id HAVING count(*) > 1",
            ids,
        )
        events = await stored_events(js, set(ids))

        history: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
        for plan_id, version, parent, _ in versions:
            history[plan_id].append((int(version), parent))
        gaps = {
            p: sorted(history[p])
            for p in ids
            if sorted(history[p]) != [(v, None if v == 1 else v - 1) for v in range(1, expected[p] + 1)]
        }
        run_versions = Counter((r[0], r[2]) for r in runs if r[2] is not None)
        dup_runs = [k for k, n in run_versions.items() if n > 1]
        per_version = Counter((c["plan_id"], c["version"]) for c in changes if c["plan_id"] in expected)
        wanted = {(p, v) for p in ids for v in range(1, expected[p] + 1)}
        changed_wrong = {f"{k[0]}@{k[1]}": per_version.get(k, 0) for k in wanted | set(per_version)}
        changed_wrong = {k: n for k, n in changed_wrong.items() if n != 1}
        event_dups, terminal_wrong, agent_wrong = [], [], []
        for plan_id, evs in events.items():
            if len({e["id"] for e in evs}) != len(evs):
                event_dups.append(plan_id)
            terminals = [e for e in evs if e["kind"] in TERMINAL]
            if len(terminals) != expected[plan_id]:
                terminal_wrong.append((plan_id, [e["kind"] for e in terminals]))
            by_run: dict[Any, list[str]] = defaultdict(list)
            for e in evs:
                if e.get("agent") and e["kind"] == "agent_completed":
                    by_run[(e.get("run_id"), e.get("version"), e["agent"])].append(e["kind"])
            if any(len(k) != 1 for k in by_run.values()):
                agent_wrong.append(plan_id)
        not_completed = [(p, s) for p, (s, _) in state.items() if s != "completed"]

        once = [p for p in ids if expected[p] == 1]
        took = await query(
            stack.database_url,
            "SELECT extract(epoch FROM completed_at - created_at) FROM planner.plans"
            " WHERE plan_id = ANY(%s) AND completed_at IS NOT NULL",
            once,
        )
        report.latencies("faulted", [float(t[0]) for t in took])
        report.count(
            attempted=plans,
            terminated=sum(1 for p in ids if state.get(p, ("?", 0))[0] in TERMINAL),
            lost=len(stuck),
            kills=kills,
            kill_ticks_skipped_peer_not_ready=skipped,
            runs=len(runs),
            versions=len(versions),
            plans_changed_msgs=len(changes),
            job_slots=len(final_rows),
        )
        report.extra["seconds_to_settle"] = round(elapsed, 1)
        report.check("every plan terminal with all its versions", not stuck, stuck[:10])
        report.check(
            "every run completed (the local model never fails)", not not_completed, not_completed[:10]
        )
        report.check(
            "each agent job slot has exactly one final outcome, none pending",
            {row[4] for row in final_rows} == {1} and int(pending[0][0]) == 0,
            {"multi": [r[:4] for r in final_rows if r[4] != 1][:10], "pending": int(pending[0][0])},
        )
        report.check(
            "version history without gaps or duplicates",
            not gaps and not dup_runs,
            {"gaps": gaps, "dup_runs": dup_runs},
        )
        report.check(
            "plans.changed once per version", not changed_wrong, dict(list(changed_wrong.items())[:10])
        )
        report.check("no event stored twice", not event_dups, event_dups[:10])
        report.check("one terminal event per version", not terminal_wrong, terminal_wrong[:10])
        report.check("each agent announced once per run", not agent_wrong, agent_wrong[:10])
        report.check("no forked checkpoint", not forks, [tuple(f) for f in forks][:10])
    finally:
        stop_kills.set()
        stop_changes.set()
        report.write()
        await nc.close()
    report.assert_all()
