"""Issue #12, test 3: Postgres stopped (`pg_ctl stop -m immediate`) for 30 s (full tier: 150 s)
under steady usage, then started again on the same data.

Oracles: 0 usage events lost (the ledger holds every distinct event of the USAGE stream);
0 messages dead-lettered or terminated; the ledger's consumer lag back to 0 within 60 s of
Postgres answering again; /readyz of the services that use Postgres 503 problem+json naming
`postgres` during the outage (the others, and every /healthz, stay 200) and 200 within 10 s
after; 0 plans failed (every plan accepted reaches completed or partial). The time bounds are
liveness bounds, polled, not speed assertions.

This test replaces tests/e2e/test_readiness.py (a `fast` stop, readiness only).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from harness import (
    OK_TERMINAL,
    TERMINAL,
    ChaosStackFactory,
    Load,
    consumer_states,
    dead_letter_lines,
    ledger_rows,
    usage_stream_events,
)
from report import ChaosReport
from tripmesh_devstack.supervisor import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

DOWN_SECONDS = {"pr": 30.0, "full": 150.0}
PLANS_PER_SECOND = 0.5
LAG_BOUND = 60.0
READY_BOUND = 10.0
SERVICES = ("gateway", "planner", "agent-runner", "cost-ledger", "vector-sync")
USES_POSTGRES = ("gateway", "planner", "cost-ledger")


async def probe(http: httpx.AsyncClient, stack: Stack, path: str) -> dict[str, httpx.Response | None]:
    async def one(name: str) -> httpx.Response | None:
        try:
            return await http.get(stack.url(name) + path)
        except httpx.HTTPError:
            return None

    answers = await asyncio.gather(*(one(name) for name in SERVICES))
    return dict(zip(SERVICES, answers, strict=True))


def names_postgres(r: httpx.Response | None) -> bool:
    if r is None or r.status_code != 503:
        return False
    if not r.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    body: dict[str, Any] = r.json()
    return (
        body.get("status") == 503
        and set(body.get("dependencies") or {}) == {"postgres"}  # NATS is fine
        and "postgres" in body.get("detail", "")
        and str(body.get("type", "")).endswith("/not-ready")
        and bool(body.get("title"))
    )


def status(r: httpx.Response | None) -> int | None:
    return None if r is None else r.status_code


async def watch_outage(http: httpx.AsyncClient, stack: Stack, seconds: float) -> dict[str, Any]:
    """Poll readiness and liveness for the outage's length; what was seen (and, per service,
    every /readyz answer: status code, or the error when it did not answer)."""
    seen: dict[str, Any] = {
        "not_ready_naming_postgres": set(),
        "others_not_ready": set(),
        "healthz_down": set(),
    }
    answers: dict[str, dict[str, int]] = {name: {} for name in SERVICES}
    samples: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = await probe(http, stack, "/readyz")
        alive = await probe(http, stack, "/healthz")
        for name, r in ready.items():
            key = "no answer" if r is None else str(r.status_code)
            answers[name][key] = answers[name].get(key, 0) + 1
            if r is not None and r.status_code != 200:
                samples.setdefault(name, r.text[:300])
        for name in USES_POSTGRES:
            if names_postgres(ready[name]):
                seen["not_ready_naming_postgres"].add(name)
        for name in set(SERVICES) - set(USES_POSTGRES):
            if status(ready[name]) != 200:
                seen["others_not_ready"].add(name)
        seen["healthz_down"].update(n for n, r in alive.items() if status(r) != 200)
        await asyncio.sleep(1.0)
    return {**{k: sorted(v) for k, v in seen.items()}, "readyz_answers": answers, "samples": samples}


async def until_ready(http: httpx.AsyncClient, stack: Stack, bound: float) -> dict[str, float | None]:
    """Seconds until each service's /readyz answered 200 (None: not within `bound`)."""
    started, out = time.monotonic(), dict.fromkeys(SERVICES)
    while time.monotonic() - started < bound and None in out.values():
        for name, r in (await probe(http, stack, "/readyz")).items():
            if out[name] is None and status(r) == 200:
                out[name] = round(time.monotonic() - started, 2)
        await asyncio.sleep(0.25)
    return out


async def until_lag_zero(stack: Stack, bound: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < bound:
        try:
            ledger = (await consumer_states(stack))["cost-ledger-usage"]
            if ledger["pending"] == 0 and ledger["ack_pending"] == 0:
                return round(time.monotonic() - started, 2)
        except Exception:
            pass
        await asyncio.sleep(0.5)
    return None


async def test_postgres_down_under_steady_usage(chaos_stack: ChaosStackFactory, tier: str) -> None:
    down = DOWN_SECONDS[tier]
    chaos = chaos_stack("postgres-down", latency_ms="100-600")
    stack = chaos.stack
    assert stack.postgres is not None
    with ChaosReport(
        "postgres_down", tier=tier, down_seconds=down, stop_mode="immediate",
        plans_per_second=PLANS_PER_SECOND, llm_latency_ms=chaos.llm.latency_ms, lag_bound_s=LAG_BOUND,
        ready_bound_s=READY_BOUND,
    ) as report:  # fmt: skip
        load = Load(stack)
        await load.sign_up(4)
        await load.submit(8)
        baseline = await load.wait_terminal(300)
        report.latencies("baseline", load.latencies(baseline))
        before = set(load.plans)
        dlq_before = (await consumer_states(stack))["DLQ"]["messages"]

        # steady usage from 10 s before the stop to 20 s after the start
        steady = int((down + 30) * PLANS_PER_SECOND)
        submitting = asyncio.create_task(
            load.submit(steady, concurrency=steady, spacing=1 / PLANS_PER_SECOND)
        )
        await asyncio.sleep(10)
        async with httpx.AsyncClient(timeout=10) as http:
            report.fault("postgres_stop", mode="immediate")
            await asyncio.to_thread(stack.postgres.stop, "immediate")
            try:
                during = await watch_outage(http, stack, down)
            finally:
                await asyncio.to_thread(stack.postgres.start)
                report.fault("postgres_start")
            lag_task = asyncio.create_task(until_lag_zero(stack, LAG_BOUND))
            ready_after = await until_ready(http, stack, READY_BOUND)
            lag_zero_after = await lag_task
        await submitting
        states = await load.wait_terminal(600)
        report.latencies("faulted", load.latencies({p: v for p, v in states.items() if p not in before}))

        await until_lag_zero(stack, LAG_BOUND)
        consumers = await consumer_states(stack)
        events = await usage_stream_events(stack)
        rows = {r[0] for r in await ledger_rows(stack)}
        distinct = {e["id"] for e in events}
        stuck = sorted(p for p in load.plans if p not in states or states[p][0] not in TERMINAL)
        failed = sorted(p for p, (s, _) in states.items() if s in TERMINAL and s not in OK_TERMINAL)
        terminated = dead_letter_lines(stack)
        report.count(
            attempted=len(load.plans), acked=len(load.plans), delivered=len(states) - len(stuck),
            duplicates_suppressed=len(events) - len(distinct), lost=len(distinct - rows) + len(stuck),
            dead_lettered=consumers["DLQ"]["messages"] - dlq_before, terminated=len(terminated),
            usage_events=len(distinct), ledger_rows=len(rows), refused_posts=load.refused,
            partial=sum(1 for s, _ in states.values() if s == "partial"), crashed=len(stack.crashed()),
        )  # fmt: skip
        report.extra.update(during=during, ready_after_s=ready_after, lag_zero_after_s=lag_zero_after)

        report.check("0 usage events lost", distinct <= rows, {"missing": len(distinct - rows)})
        dead = consumers["DLQ"]["messages"] - dlq_before
        report.check("0 dead-lettered or terminated", dead == 0 and not terminated,
                     {"dlq": dead, "log": terminated[:5]})  # fmt: skip
        report.check(
            f"ledger lag back to 0 within {LAG_BOUND:g} s", lag_zero_after is not None, lag_zero_after
        )
        report.check(
            "/readyz 503 naming postgres during (others and /healthz 200)",
            during["not_ready_naming_postgres"] == sorted(USES_POSTGRES)
            and not during["others_not_ready"]
            and not during["healthz_down"],
            during,
        )
        report.check(
            f"/readyz 200 within {READY_BOUND:g} s after", None not in ready_after.values(), ready_after
        )
        report.check("0 plans failed by the outage", not stuck and not failed,
                     {"stuck": stuck[:20], "failed": failed[:20]})  # fmt: skip
        report.check("no service crashed", not stack.crashed(), [r.tag for r in stack.crashed()])
        report.assert_all()
