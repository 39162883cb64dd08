"""Reservation latency (issue #6): `svc.ledger.reserve` + `svc.ledger.settle` round trips
against the real cost-ledger process, as the runner makes them before and after every LLM
call. Writes reports/bench/ledger-reserve-<timestamp>.{json,md}.

  uv run python bench/budget/reserve_latency.py [--calls 3000] [--concurrency 32] [--users 100]

1. starts a private nats-server and Postgres (tripmesh_devstack; or NATS_URL / DATABASE_URL)
   and the real service process `python -m tripmesh_cost_ledger`, configured by env only;
2. `sequential`: one reserve then one settle at a time (the latency one runner call adds);
3. `concurrent`: `--concurrency` callers over `--users` users (many runners at once);
4. `one user`: 200 reservations of one user at once (every one waits for the user's lock:
   the worst case, and the issue's 200-plan scenario), checking grants never pass the cap.
Latency is measured at the caller (request sent -> reply decoded), in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import new_id
from tripmesh_contracts.rpc import ReserveReply, ReserveRequest, SettleReply, SettleRequest
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.ports import free_port
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_kit.bus import make_broker

ROOT = Path(__file__).resolve().parents[2]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(name: str, seconds: list[float], wall: float, **extra: Any) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "phase": name,
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "per_second": round(len(ms) / wall, 1),
        **extra,
    }


async def call(broker: Any, subject: str, request: Any, reply_model: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = await broker.request(request.to_bytes(), subject, timeout=30)
    reply = reply_model.model_validate_json(response.body)
    if reply.error is not None:
        raise RuntimeError(f"{subject}: {reply.error}")
    return reply, time.perf_counter() - started


async def reserve_and_settle(broker: Any, user: str, amount: Decimal) -> tuple[bool, float, float]:
    rid = f"bench-{new_id()}"
    req = ReserveRequest(reservation_id=rid, user_id=user, plan_id=f"plan-{user}", amount_usd=amount)
    reply, reserve_s = await call(broker, subjects.SVC_LEDGER_RESERVE, req, ReserveReply)
    settle = SettleRequest(reservation_id=rid, user_id=user, actual_usd=amount / 2)
    _, settle_s = await call(broker, subjects.SVC_LEDGER_SETTLE, settle, SettleReply)
    return bool(reply.granted), reserve_s, settle_s


async def wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1200):
            if proc.returncode is not None:
                raise RuntimeError("cost-ledger exited during start-up")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("cost-ledger never became ready")


async def phases(broker: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    tiny = Decimal("0.00001")  # far below every cap: these phases measure latency, not refusals
    for _ in range(50):  # warm-up: connections, prepared plans
        await reserve_and_settle(broker, "warm", tiny)

    reserve_s, settle_s = [], []
    t0 = time.perf_counter()
    for n in range(args.calls):
        _, r, s = await reserve_and_settle(broker, f"seq-{n % args.users}", tiny)
        reserve_s.append(r)
        settle_s.append(s)
    wall = time.perf_counter() - t0
    results.append(summary("sequential reserve", reserve_s, wall))
    results.append(summary("sequential settle", settle_s, wall))

    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.calls):
        queue.put_nowait(n)
    reserve_s = []

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            _, r, _ = await reserve_and_settle(broker, f"con-{n % args.users}", tiny)
            reserve_s.append(r)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    results.append(
        summary("concurrent reserve", reserve_s, time.perf_counter() - t0, concurrency=args.concurrency)
    )

    t0 = time.perf_counter()
    outcomes = await asyncio.gather(
        *(reserve_and_settle(broker, "one-user", Decimal("0.03")) for _ in range(200))
    )
    granted = sum(1 for ok, _, _ in outcomes if ok)
    results.append(
        summary(
            "one user, 200 at once", [r for _, r, _ in outcomes], time.perf_counter() - t0, granted=granted
        )
    )
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))  # bench/calibration.py, shared with the other benches
    from calibration import cpu_calibration_ms

    calibration_ms = cpu_calibration_ms()  # before anything of ours runs
    work = Path(tempfile.mkdtemp(prefix="bench-reserve-"))
    nats = pg = None
    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    if not nats_url:
        nats = NatsServer(work / "nats")
        nats.start()
        nats_url = nats.url
    if not database_url:
        pg = PostgresServer(work / "pg")
        pg.start()
        database_url = pg.url
    port = free_port()
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url}
    env |= {"COST_LEDGER_HTTP_PORT": str(port), "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    log_path = work / "cost-ledger.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tripmesh_cost_ledger", env=env, stdout=log_file, stderr=log_file
        )
    broker = make_broker(nats_url, "bench-reserve")
    try:
        await wait_ready(port, proc)
        await broker.connect()
        results = await phases(broker, args)
    finally:
        await broker.stop()
        proc.terminate()
        await proc.wait()
        if pg is not None:
            pg.stop()
        if nats is not None:
            nats.stop()
    return {
        "started": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "cpu_calibration_ms": calibration_ms,
        },
        "args": vars(args),
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=100)
    report = asyncio.run(run(parser.parse_args()))
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"ledger-reserve-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    lines = [
        "# svc.ledger.reserve / settle latency (real cost-ledger process, real Postgres)",
        "",
        f"CPU calibration {report['machine']['cpu_calibration_ms']} ms (bench/calibration.py).",
        "",
        "| phase | n | p50 ms | p95 ms | p99 ms | max ms | per second | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        note = ", ".join(f"{k} {r[k]}" for k in ("concurrency", "granted") if k in r)
        lines.append(
            f"| {r['phase']} | {r['n']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']}"
            f" | {r['per_second']} | {note} |"
        )
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
