"""Issue #12, test 5: SIGTERM drain of each service under load.

One stack, plans flowing; each service in turn gets SIGTERM (as a deploy or `make up`'s Ctrl-C
sends it) and is started again. The agent-runner is terminated with an LLM call provably in
flight: the test LLM holds one call (`hold`) until the runner has been signalled, then lets it
finish while the runner drains.

Oracles, per service: it exits with code 0 within its drain timeout (20 s; a liveness bound);
0 redeliveries caused by it: a message the drained process left unacknowledged comes back to
its durable consumer, i.e. to the process that replaces it, whose redelivered counter
(`tripmesh_messages_redelivered_total` on its /metrics, from 0 at its start) must stay 0 once
the load has settled. Redeliveries the other services see while it is away (the runner's
budget reservations nak'ed while the ledger restarts) are caused by its downtime, not by the
drain: they are reported, not judged. (The consumers' `num_redelivered` is not used: it counts
only redelivered messages still unacknowledged.)
At the end every plan is terminal, none failed, nothing was dead-lettered.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from harness import OK_TERMINAL, TERMINAL, ChaosEnv, ChaosStackFactory, Load, consumer_states, metric_sum
from report import ChaosReport

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

DRAIN_TIMEOUT = 20.0
"""Every service's default drain_timeout_seconds (tripmesh_kit.settings)."""
ORDER = ("gateway", "planner", "agent-runner", "cost-ledger", "vector-sync")
DRAINED = {"pr": ORDER[:4], "full": ORDER}
"""PR tier: vector-sync drains in the full tier only; its own process test
(services/vector-sync/tests/integration/test_process.py) SIGTERMs it and checks the exit. Keeps
`make test` under ~40 minutes."""
PLANS_EACH = {"pr": 6, "full": 40}


async def redelivered(chaos: ChaosEnv, *, of: str | None = None, but: str | None = None) -> float:
    """Redeliveries seen by the running replicas (sum of their counters): of service `of`
    only, or of every service `but` one."""
    total = 0.0
    async with httpx.AsyncClient(timeout=10) as http:
        for r in chaos.stack.all_replicas():
            if r.running and (of is None or r.spec.name == of) and r.spec.name != but:
                text = (await http.get(r.url + "/metrics")).text
                total += metric_sum(text, "tripmesh_messages_redelivered_total")
    return total


async def wait_held(chaos: ChaosEnv, bound: float = 120.0) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(chaos.llm.health))["held"]:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_sigterm_drains_every_service_under_load(chaos_stack: ChaosStackFactory, tier: str) -> None:
    chaos = chaos_stack("sigterm-drain", latency_ms="200-1500")
    stack = chaos.stack
    with ChaosReport(
        "sigterm_drain", tier=tier, services=list(DRAINED[tier]), drain_timeout_s=DRAIN_TIMEOUT,
        plans_per_service=PLANS_EACH[tier], llm_latency_ms=chaos.llm.latency_ms,
        **({"reduced_from": {"services": list(ORDER)}} if tier == "pr" else {}),
    ) as report:  # fmt: skip
        load = Load(stack)
        await load.sign_up(4)
        await load.submit(6)
        report.latencies("baseline", load.latencies(await load.wait_terminal(300)))
        before = set(load.plans)
        drains: dict[str, dict[str, object]] = {}

        for name in DRAINED[tier]:
            loading = asyncio.create_task(load.submit(PLANS_EACH[tier], concurrency=2, spacing=0.5))
            held = None
            if name == "agent-runner":
                await asyncio.to_thread(chaos.llm.script, "hold")
                held = await wait_held(chaos)
            else:
                await asyncio.sleep(3)  # work in flight everywhere
            elsewhere_before = await redelivered(chaos, but=name)
            report.fault("sigterm", target=f"{name}#0", llm_call_held=held)
            started = time.monotonic()
            terminating = asyncio.create_task(asyncio.to_thread(stack.terminate, name, 0, DRAIN_TIMEOUT + 10))
            if held:
                await asyncio.sleep(2)  # the runner has the signal, the call is still in flight
                await asyncio.to_thread(chaos.llm.release)
            code = await terminating
            took = round(time.monotonic() - started, 2)
            await asyncio.to_thread(stack.start_replica, name, 0, True)
            await loading
            await load.wait_terminal(300)
            await asyncio.sleep(2)
            drains[name] = {
                "exit_code": code, "seconds": took, "llm_call_held": held,
                # the drained service's consumers, counted by the process that replaced it
                # (its counters start at 0): what the drained one left unacknowledged
                "redelivered_metric": await redelivered(chaos, of=name),
                # the others' (e.g. the runner nak'ing while the ledger restarts): downtime,
                # not the drain; reported, not an oracle
                "redelivered_elsewhere": await redelivered(chaos, but=name) - elsewhere_before,
            }  # fmt: skip

        states = await load.wait_terminal(300)
        report.latencies("faulted", load.latencies({p: v for p, v in states.items() if p not in before}))
        stuck = sorted(p for p in load.plans if p not in states or states[p][0] not in TERMINAL)
        failed = sorted(p for p, (s, _) in states.items() if s in TERMINAL and s not in OK_TERMINAL)
        dlq = (await consumer_states(stack))["DLQ"]["messages"]
        report.extra["drains"] = drains
        report.count(
            attempted=len(load.plans), acked=len(load.plans), delivered=len(states) - len(stuck),
            redelivered=int(sum(float(str(d["redelivered_metric"])) for d in drains.values())),
            lost=len(stuck), dead_lettered=dlq, plans_failed=len(failed), refused_posts=load.refused,
        )  # fmt: skip

        for name, d in drains.items():
            report.check(f"{name}: exit 0 within the drain timeout",
                         d["exit_code"] == 0 and float(d["seconds"]) <= DRAIN_TIMEOUT, d)  # type: ignore[arg-type]  # fmt: skip
            report.check(f"{name}: 0 redeliveries caused by the drain",
                         d["redelivered_metric"] == 0, d)  # fmt: skip
        report.check("the runner was terminated mid-call", drains["agent-runner"]["llm_call_held"] is True)
        report.check("every plan terminal, none failed", not stuck and not failed,
                     {"stuck": stuck[:20], "failed": failed[:20]})  # fmt: skip
        report.check("0 dead-lettered", dlq == 0, dlq)
        report.assert_all()
