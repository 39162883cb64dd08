"""Issue #12, test 1: the runner kill storm.

Four agent-runner replicas serve every agent; the LLM answers each call after 0.2-3 s (seeded),
so kills land mid-call. While the plans run, a random runner is SIGKILLed every 5 +- 2 s and
started again; every 4th tick SIGSTOPs one instead, for longer than AckWait, then SIGCONTs it
(its jobs went to the others; it wakes up and finishes its stale copies). Oracles (read from
the stores, never from the services' own word):

- every plan is terminal, completed or partial (none stuck, none failed);
- 0 duplicate ledger rows: the ledger holds exactly the distinct usage events of the USAGE
  stream, and its running totals add up to its rows;
- the ledger's total equals the total over distinct usage events, exactly (numeric, not float);
- every call on the provider invoice is charged in the ledger (0 missing; the issue allows up to
  the kills that landed inside an LLM call). A runner killed after the provider answered and
  before its usage event was published leaves a billed call no usage event records; the window
  is closed by the reservation: each request carries its reservation id (the runner's
  `X-Tripmesh-Reservation-Id` header, written on the invoice), and an unsettled reservation is
  charged at its maximum when it expires (the ledger's sweeper). After the storm the test waits
  until no reservation is open, then matches each billed call to the ledger's charge of its
  reservation, real or estimated (`reconcile.py`); an estimate is never below the bill;
- each agent section is applied once per plan (the planner's agent_executions).

This test replaces tests/e2e/test_runners_crash.py (one kill of one replica, 30 plans).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from harness import (
    OK_TERMINAL,
    TERMINAL,
    ChaosStackFactory,
    Load,
    consumer_states,
    dead_letter_lines,
    ledger_matches_usage,
    ledger_rows,
    ledger_totals,
    log_events,
    ready,
    usage_stream_events,
)
from reconcile import expected_ledger, ledger_charges, reconcile, until_no_open_reservations
from report import ChaosReport
from tripmesh_devstack import procs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

REPLICAS = 4
MIN_READY = 3
"""A storm tick kills only while this many runners are ready (see kill_storm)."""
# PR tier: the counts took ~50 min for the battery on this 2-core machine; CI's make test
# must stay under ~40 min. The full tier keeps the counts; reports say `reduced_from`.
COUNTS = {"pr": 60, "full": 1000}
BASELINE = {"pr": 8, "full": 40}
LIVENESS = {"pr": 600.0, "full": 2400.0}
"""Seconds for every plan to end after the last POST: a stuck plan crosses it, a slow one not."""
RESERVATION_TTL_S = 60.0
"""The runners' reservation TTL here (the default, from the LLM timeout and retries, is ~4 min):
after the storm the test waits until every reservation a kill left open is charged."""
PRICE_PER_1K = (Decimal("0.0005"), Decimal("0.0015"))
"""The runners' fallback price for the stub model (harness.LlmProcess.agent_env)."""
FREEZE_EVERY = 4
"""Every 4th storm tick SIGSTOPs its runner instead of killing it, and SIGCONTs it FREEZE_S
later: a frozen worker (a VM pause, a stuck GC) whose jobs pass AckWait and go to the other
runners, then wakes up and finishes its stale copies. The oracles below must hold all the
same: each section applied once, every billed call charged once."""
FREEZE_S = 20.0
"""Longer than the runners' AckWait (15 s): the frozen runner's jobs are redelivered."""
IN_FLIGHT_GRACE = 1.0
"""A call answered this long before a kill may still be unrecorded (parse, publish, ack)."""


async def freeze(stack: Any, index: int, report: ChaosReport) -> None:
    """SIGSTOP a runner's process group, SIGCONT it FREEZE_S later."""
    proc = stack.replica("agent-runner", index).proc
    if proc is None:
        return
    report.fault("sigstop", target=f"agent-runner#{index}")
    procs.signal_group(proc, signal.SIGSTOP)
    await asyncio.sleep(FREEZE_S)
    procs.signal_group(proc, signal.SIGCONT)
    report.fault("sigcont", target=f"agent-runner#{index}")


async def kill_storm(chaos: Any, report: ChaosReport, stop: asyncio.Event, rng: random.Random) -> list[float]:
    """Every 5 +- 2 s SIGKILL a random ready runner and start it again (every FREEZE_EVERY-th
    tick: SIGSTOP it for FREEZE_S instead); the kill times.

    A tick kills only while at least MIN_READY runners are ready. A runner costs several CPU
    seconds to start (imports, connections): on two cores, a kill every 5 s regardless keeps
    every runner starting forever (measured: 0 jobs done in minutes), a measure of the
    machine, not of the system. Skipped ticks are reported as faults of kind `tick_skipped`.
    A frozen runner is not ready, so no tick kills it while it is stopped."""
    stack = chaos.stack
    kills: list[float] = []
    freezes: list[asyncio.Task[None]] = []
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(3.0, 7.0))
            break
        except TimeoutError:
            pass
        running = [i for i in range(REPLICAS) if await ready(stack.url("agent-runner", i))]
        if len(running) < MIN_READY:
            report.fault("tick_skipped", ready=len(running))
            continue
        index = rng.choice(running)
        if (len(kills) + len(freezes) + 1) % FREEZE_EVERY == 0:
            # a frozen runner does not answer /readyz: no tick picks it until it wakes
            freezes.append(asyncio.create_task(freeze(stack, index, report)))
            continue
        kills.append(time.time())
        report.fault("sigkill", target=f"agent-runner#{index}")
        await asyncio.to_thread(stack.kill, "agent-runner", index, signal.SIGKILL)
        await asyncio.to_thread(stack.start_replica, "agent-runner", index, False)
    await asyncio.gather(*freezes)
    return kills


def calls_in_flight(invoice: list[dict[str, Any]], kills: list[float]) -> tuple[int, int]:
    """(kills that landed inside an LLM call, calls in flight at some kill)."""
    landed, caught = 0, set()
    for at in kills:
        hit = [
            c["index"]
            for c in invoice
            if c["received_at"] <= at <= (c["answered_at"] or at) + IN_FLIGHT_GRACE
        ]
        landed += bool(hit)
        caught.update(hit)
    return landed, len(caught)


async def sections(
    database_url: str, plans: list[str]
) -> tuple[dict[tuple[str, str, str, int], int], list[str]]:
    """Completed executions per (plan, agent, stage, round); plans without exactly version 1."""
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        rows = await (
            await db.execute(
                "SELECT plan_id, agent, stage, round, count(*) FROM planner.agent_executions"
                " WHERE plan_id = ANY(%s) AND status = 'completed' GROUP BY 1, 2, 3, 4",
                (plans,),
            )
        ).fetchall()
        versions = await (
            await db.execute(
                "SELECT p.plan_id FROM planner.plans p WHERE p.plan_id = ANY(%s) AND (p.current_version <> 1"
                " OR (SELECT array_agg(version) FROM planner.plan_versions v WHERE v.plan_id = p.plan_id)"
                " IS DISTINCT FROM ARRAY[1])",
                (plans,),
            )
        ).fetchall()
    return {(p, a, s, r): n for p, a, s, r, n in rows}, [str(v[0]) for v in versions]


async def ledger_caught_up(stack: Any, liveness: float = 120.0) -> dict[str, dict[str, Any]]:
    """Consumer states once the ledger has nothing pending or unacked (or `liveness` passed)."""
    deadline = time.monotonic() + liveness
    while True:
        consumers = await consumer_states(stack)
        ledger = consumers["cost-ledger-usage"]
        if (ledger["pending"] == 0 and ledger["ack_pending"] == 0) or time.monotonic() > deadline:
            return consumers
        await asyncio.sleep(1.0)


async def test_runner_kill_storm(chaos_stack: ChaosStackFactory, tier: str) -> None:
    plans = COUNTS[tier]
    chaos = chaos_stack(
        "kill-storm", replicas={"agent-runner": REPLICAS},
        env={"agent-runner": {"AGENT_RUNNER_RESERVATION_TTL_SECONDS": str(RESERVATION_TTL_S)}},
    )  # fmt: skip
    stack = chaos.stack
    rng = random.Random(1212)
    with ChaosReport(
        "runner_kill_storm", tier=tier, plans=plans, runner_replicas=REPLICAS, kill_every_s="5+-2",
        llm_latency_ms=chaos.llm.latency_ms, seed=1212, baseline_plans=BASELINE[tier],
        kill_only_when_ready_at_least=MIN_READY,
        freeze_every_nth_tick=FREEZE_EVERY, freeze_s=FREEZE_S,
        **({"reduced_from": {"plans": 200}} if tier == "pr" else {}),
    ) as report:  # fmt: skip
        load = Load(stack)
        await load.sign_up(10)
        await load.submit(BASELINE[tier])
        baseline = await load.wait_terminal(LIVENESS[tier])
        report.latencies("baseline", load.latencies(baseline))
        baseline_ids = set(load.plans)

        stop = asyncio.Event()
        storm = asyncio.create_task(kill_storm(chaos, report, stop, rng))
        await load.submit(plans, concurrency=4)
        states = await load.wait_terminal(LIVENESS[tier])
        stop.set()
        kills = await storm
        report.fault("storm_end", kills=len(kills))
        for index in range(REPLICAS):  # the storm may end between a kill and its restart
            await asyncio.to_thread(stack.start_replica, "agent-runner", index, True)

        faulted = {p: v for p, v in states.items() if p not in baseline_ids}
        report.latencies("faulted", load.latencies(faulted))
        stuck = sorted(p for p in load.plans if p not in states or states[p][0] not in TERMINAL)
        failed = sorted(p for p, (s, _) in states.items() if s in TERMINAL and s not in OK_TERMINAL)

        # reservations a kill left open are charged at expiry; then the ledger ingests those
        open_left, waited = await until_no_open_reservations(stack, RESERVATION_TTL_S + 180)
        report.fault("reservations_expired", open_left=open_left, waited_s=waited)
        consumers = await ledger_caught_up(stack)
        events = await usage_stream_events(stack)
        rows = await ledger_rows(stack)
        totals = await ledger_totals(stack)
        invoice = chaos.llm.invoice()
        by_id = expected_ledger(events)
        row_ids = [r[0] for r in rows]
        ledger_total = sum((r[3] for r in rows), Decimal(0))
        stream_total = sum(by_id.values(), Decimal(0))
        answered_ok = [c for c in invoice if c["answer"] == "ok"]
        recorded_ok = [r for r in rows if r[4]]
        matched = reconcile(invoice, await ledger_charges(stack), PRICE_PER_1K)
        landed, caught = calls_in_flight(invoice, kills)
        per_section, not_one_version = await sections(stack.database_url, list(load.plans))
        twice = {k: n for k, n in per_section.items() if n != 1}
        started = [
            line
            for i in range(REPLICAS)
            for line in log_events(stack.log_path("agent-runner", i), "agent_job_started")
        ]
        terminated = dead_letter_lines(stack, "max_deliver")
        ledger_ok, ledger_detail = ledger_matches_usage(rows, events, totals)

        report.count(
            attempted=len(load.plans), acked=len(load.plans), delivered=len(states) - len(stuck),
            redelivered=sum(1 for line in started if int(line.get("delivered", 1)) >= 2),
            duplicates_suppressed=len(events) - len({e["id"] for e in events}),
            lost=len(stuck) + len(set(by_id) - set(row_ids)),
            dead_lettered=consumers["DLQ"]["messages"], terminated=len(terminated),
            kills=len(kills), freezes=sum(1 for f in report.faults if f["kind"] == "sigcont"),
            kills_inside_llm_call=landed, calls_in_flight_at_kills=caught,
            invoice_calls=len(invoice), invoice_ok=len(answered_ok), ledger_rows=len(rows),
            ledger_success_rows=len(recorded_ok), invoice_missing_from_ledger=len(matched.missing),
            invoice_calls_charged_as_estimate=matched.charged_as_estimate,
            estimates_without_billed_call=matched.estimates_without_call, reservations_open_after=open_left,
            usage_stream_messages=len(events), usage_distinct=len(by_id), plans_failed=len(failed),
            partial=sum(1 for s, _ in states.values() if s == "partial"), refused_posts=load.refused,
        )  # fmt: skip
        report.check("every plan terminal (completed or partial)", not stuck and not failed,
                     {"stuck": stuck[:20], "failed": failed[:20]})  # fmt: skip
        report.check("0 duplicate ledger rows (ledger == distinct USAGE events)", ledger_ok, ledger_detail)
        report.check("ledger total == total over distinct usage events (exact)", ledger_total == stream_total,
                     {"ledger": str(ledger_total), "usage": str(stream_total)})  # fmt: skip
        report.check(
            "every billed call on the invoice is charged in the ledger (0 missing <= kills inside a call)",
            open_left == 0 and not matched.missing and not matched.without_id and matched.billed > 0,
            {**matched.as_dict(), "kills_inside_llm_call": landed, "in_flight_at_kills": caught,
             "open_reservations_left": open_left},
        )  # fmt: skip
        report.check("an estimate is never below the provider's bill", matched.estimate_below_bill == 0,
                     matched.as_dict())  # fmt: skip
        report.check(
            "each agent section applied once per plan",
            not twice,
            {str(k): n for k, n in list(twice.items())[:20]},
        )
        report.check("each plan has exactly one version (1)", not not_one_version, not_one_version[:20])
        report.check("ledger consumer caught up", consumers["cost-ledger-usage"]["pending"] == 0,
                     consumers["cost-ledger-usage"])  # fmt: skip
        report.assert_all()
