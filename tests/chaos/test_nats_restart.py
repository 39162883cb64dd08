"""Issue #12, test 2: the broker restarted under a plan run.

`nats-server` is SIGKILLed when 30 % and when 70 % of the plans are terminal, stays down 10 s
(full tier: 150 s, longer than the streams' 120 s duplicate window) and is started again on
the same store; between the two, a lame-duck stop (`--signal ldm`: clients are told to move,
the server exits over its lame-duck duration) and a start.

Every publisher logs the stream and sequence of each acknowledged publish (tripmesh_kit.bus,
`published` at DEBUG; the services run at LOG_LEVEL=DEBUG here). Oracles:

- every plan terminal (none failed);
- 0 lost acknowledged publishes: no (stream, seq) acknowledged for two different message ids
  (a server that forgot a write hands its sequence out again), no acknowledged sequence above
  the stream's last, and on the limits streams (USAGE, PLAN_EVENTS: consumers remove nothing)
  every acknowledged sequence still holds the message id it was acknowledged for;
- every consumer resumes: every durable consumer ends with nothing pending or unacknowledged,
  every service ready again;
- 0 duplicate ledger rows (the ledger holds exactly the distinct USAGE events; totals == rows).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import nats
import pytest
from harness import (
    OK_TERMINAL,
    TERMINAL,
    ChaosStackFactory,
    Load,
    consumer_states,
    ledger_matches_usage,
    ledger_rows,
    ledger_totals,
    log_events,
    usage_stream_events,
)
from report import ChaosReport
from tripmesh_devstack.supervisor import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

# PR tier: the counts took ~50 min for the battery on this 2-core machine; CI's make test
# must stay under ~40 min. The full tier keeps the counts; reports say `reduced_from`.
PLANS = {"pr": 60, "full": 200}
DOWN_SECONDS = {"pr": 10.0, "full": 150.0}
LIMITS_STREAMS = ("USAGE", "PLAN_EVENTS")
LIVENESS = 900.0
RESUME_BOUND = 180.0
"""Seconds for every consumer's pending and ack-pending to reach 0 after the last plan ended
(a liveness bound: AckWait is 30 s, so a redelivery round fits several times)."""


async def until_consumers_idle(
    stack: Stack, bound: float
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], float | None]:
    """Poll the consumers until none has pending or ack-pending messages (or `bound` passes):
    (last states, the busy ones, seconds it took or None)."""
    started = time.monotonic()
    while True:
        consumers = await consumer_states(stack)
        busy = {k: v for k, v in consumers.items() if k != "DLQ" and (v["pending"] or v["ack_pending"])}
        if not busy:
            return consumers, busy, round(time.monotonic() - started, 1)
        if time.monotonic() - started > bound:
            return consumers, busy, None
        await asyncio.sleep(2)


async def until_share_terminal(load: Load, share: float, bound: float = 900.0) -> int:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        done = sum(1 for s, _ in (await load.states()).values() if s in TERMINAL)
        if done >= share * len(load.plans):
            return done
        await asyncio.sleep(1.0)
    raise AssertionError(f"{share:.0%} of the plans never ended (liveness bound)")


async def stored_ids(stack: Stack, stream: str) -> dict[int, str]:
    """seq -> Nats-Msg-Id of every message a limits stream holds (one ordered consumer per
    subject filter of the stream, each read until the server says nothing is pending)."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: dict[int, str] = {}
        for subject in info.config.subjects or []:
            sub = await js.subscribe(subject, ordered_consumer=True, stream=stream)
            try:
                while True:
                    msg = await sub.next_msg(timeout=5)
                    out[msg.metadata.sequence.stream] = (msg.headers or {}).get("Nats-Msg-Id", "")
                    if msg.metadata.num_pending == 0:
                        break
            except nats.errors.TimeoutError:
                pass  # no message under this subject
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def last_seqs(stack: Stack) -> dict[str, int]:
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        return {str(s.config.name): int(s.state.last_seq) for s in await js.streams_info()}
    finally:
        await nc.close()


def acknowledged(stack: Stack) -> list[dict[str, Any]]:
    return [
        line
        for r in stack.all_replicas()
        for line in log_events(stack.log_path(r.spec.name, r.index), "published")
    ]


async def lost_publishes(stack: Stack, acks: list[dict[str, Any]]) -> dict[str, Any]:
    by_seq: dict[tuple[str, int], set[str]] = {}
    for ack in acks:
        by_seq.setdefault((ack["stream"], int(ack["seq"])), set()).add(str(ack.get("msg_id")))
    reused = {f"{s}:{q}": sorted(ids) for (s, q), ids in by_seq.items() if len(ids) > 1}
    last = await last_seqs(stack)
    beyond = sorted(f"{s}:{q}" for (s, q) in by_seq if q > last.get(s, 0))
    missing: list[str] = []
    for stream in LIMITS_STREAMS:
        held = await stored_ids(stack, stream)
        for (s, q), ids in by_seq.items():
            if s == stream and held.get(q) not in ids:
                missing.append(f"{s}:{q}")
    return {"reused_seq": reused, "beyond_last_seq": beyond, "missing_from_limits_streams": missing}


async def all_ready(stack: Stack, bound: float = 120.0) -> list[str]:
    """Services not ready within `bound` (empty: all ready)."""
    deadline = time.monotonic() + bound
    pending = list(stack.all_replicas())
    async with httpx.AsyncClient(timeout=3) as http:
        while pending and time.monotonic() < deadline:
            for r in list(pending):
                try:
                    if (await http.get(r.url + "/readyz")).status_code == 200:
                        pending.remove(r)
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.5)
    return [r.tag for r in pending]


async def outage(stack: Stack, report: ChaosReport, down: float, lame_duck: bool = False) -> None:
    nats_server = stack.nats
    assert nats_server is not None
    if lame_duck:
        report.fault("nats_lame_duck")
        nats_server.lame_duck()
        await asyncio.to_thread(nats_server.wait, 120)
    else:
        report.fault("nats_kill", down_seconds=down)
        await asyncio.to_thread(nats_server.kill)
        await asyncio.sleep(down)
    await asyncio.to_thread(nats_server.start)
    report.fault("nats_start")


async def test_nats_restart_under_a_plan_run(chaos_stack: ChaosStackFactory, tier: str) -> None:
    plans, down = PLANS[tier], DOWN_SECONDS[tier]
    chaos = chaos_stack("nats-restart", stack_env={"LOG_LEVEL": "DEBUG"}, latency_ms="100-1000")
    stack = chaos.stack
    with ChaosReport(
        "nats_restart", tier=tier, plans=plans, down_seconds=down, kills_at=[0.3, 0.7], lame_duck_at=0.5,
        llm_latency_ms=chaos.llm.latency_ms, **({"reduced_from": {"plans": 200}} if tier == "pr" else {}),
    ) as report:  # fmt: skip
        load = Load(stack)
        await load.sign_up(10)
        await load.submit(10)
        report.latencies("baseline", load.latencies(await load.wait_terminal(300)))
        before = set(load.plans)

        submitting = asyncio.create_task(load.submit(plans, concurrency=4, spacing=0.2))
        await asyncio.sleep(1)
        for share, lame in ((0.3, False), (0.5, True), (0.7, False)):
            await until_share_terminal(load, share)
            await outage(stack, report, down, lame_duck=lame)
        await submitting
        states = await load.wait_terminal(LIVENESS)
        report.latencies("faulted", load.latencies({p: v for p, v in states.items() if p not in before}))
        not_ready = await all_ready(stack)
        # Deliveries whose acks the killed server never stored come back after AckWait (30 s)
        # and are then acknowledged as duplicates: "resumed" means the lag drains by itself,
        # within a liveness bound, not that it is already zero the moment the plans end.
        consumers, busy, drained_after = await until_consumers_idle(stack, RESUME_BOUND)
        report.extra["consumers_idle_after_s"] = drained_after
        acks = acknowledged(stack)
        lost = await lost_publishes(stack, acks)
        events = await usage_stream_events(stack)
        rows = await ledger_rows(stack)
        totals = await ledger_totals(stack)
        ledger_ok, ledger_detail = ledger_matches_usage(rows, events, totals)
        stuck = sorted(p for p in load.plans if p not in states or states[p][0] not in TERMINAL)
        failed = sorted(p for p, (s, _) in states.items() if s in TERMINAL and s not in OK_TERMINAL)
        n_lost = sum(len(v) for v in lost.values())
        report.count(
            attempted=len(load.plans), acked=len(acks), delivered=len(states) - len(stuck),
            redelivered=sum(int(v.get("redelivered", 0)) for k, v in consumers.items() if k != "DLQ"),
            duplicates_suppressed=sum(1 for a in acks if a.get("duplicate")), lost=n_lost + len(stuck),
            dead_lettered=consumers["DLQ"]["messages"], plans_failed=len(failed), refused_posts=load.refused,
            partial=sum(1 for s, _ in states.values() if s == "partial"),
        )  # fmt: skip
        report.extra["lost_detail"] = {k: (v if isinstance(v, dict) else v[:20]) for k, v in lost.items()}

        report.check("every plan terminal, none failed", not stuck and not failed,
                     {"stuck": stuck[:20], "failed": failed[:20]})  # fmt: skip
        report.check("0 lost acknowledged publishes", n_lost == 0 and bool(acks),
                     {"acks": len(acks), **{k: len(v) for k, v in lost.items()}})  # fmt: skip
        report.check("every consumer resumed (nothing pending, every service ready)",
                     not busy and not not_ready, {"consumers": busy, "not_ready": not_ready})  # fmt: skip
        report.check("0 duplicate ledger rows (ledger == distinct USAGE events)", ledger_ok, ledger_detail)
        report.assert_all()
