"""Replay N usage events through the real cost-ledger process into real Postgres (issue #6).

1. Start embedded NATS (JetStream, `sync_interval: always`) and Postgres (fsync on) exactly
   as `make up` does (tripmesh_devstack), or use `NATS_URL` / `DATABASE_URL` when set (then
   the USAGE stream must be empty; the ledger gets a database of its own, dropped at the end).
2. Publish N realistic `UsageEvent`s (bench/ledger/workload.py) to USAGE with async publish
   acks, in batches. Not part of the figure: embedded NATS is loaded without `sync_interval:
   always` (one fsync per message would make loading 1M events take ~16 minutes here), then
   restarted on the same store with the stock configuration for the measured phases.
3. Fresh: start `python -m tripmesh_cost_ledger` (its own process, configured by its
   environment) and time from its first fetch (the durable's first delivery) until the
   durable has every message acked, i.e. every batch committed: events/s.
4. Duplicates: stop it, delete its durable, start it again: the re-created durable delivers
   the whole stream again, every row already present. Same timing.
5. After each phase, check the ledger against the events (an assertion, not a figure): rows =
   N, and every per-user-day and per-plan total (calls and cost) equal to the Decimal sum of
   its events, exactly (8 places, hence to the cent too).

Also reported: CPU seconds of the consumer process, of Postgres (postmaster and backends) and
of nats-server in each measured window (psutil), the service's own counters, and optionally a
py-spy profile of the consumer (`--profile-seconds`). Writes reports/bench/ledger-replay.json
and .md (with `--replicas N` > 1: ledger-replay-N-replicas.json and .md). A measurement: it
asserts correctness, never speed.

    uv run python bench/ledger/replay.py --events 1000000 [--batch-size 2000] [--window 0.2]
        [--concurrency 2] [--replicas 1] [--shared-buffers 32MB] [--profile-seconds 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import psycopg
from measuring import LedgerReplicas, cpu_seconds, start_profiler, summarize_profile
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from report import write_reports
from tripmesh_contracts import streams, subjects
from tripmesh_devstack import NatsServer, PostgresServer
from tripmesh_kit.bus import connect, provision
from workload import SHAPES, Expected, Workload

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "bench"
DURABLE = streams.LEDGER_USAGE.durable
PUBLISH_WINDOW = 5000


class LoadingNats(NatsServer):
    """The devstack's NATS without `sync_interval: always`, only to load the stream: one fsync
    per message caps publishing near 1,000 messages/s here. The measured phases run on the
    stock configuration, restarted on the same store."""

    def _config(self) -> str:
        return super()._config().replace("  sync_interval: always\n", "")


@contextlib.contextmanager
def postgres(tmp: Path, shared_buffers: str) -> Iterator[tuple[str, int | None]]:
    """(database_url, postmaster pid): embedded, or a database of our own on DATABASE_URL."""
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        with PostgresServer(tmp / "pg", shared_buffers=shared_buffers) as pg:
            yield pg.url, pg.pid
        return
    name = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(admin_url, dbname=name), None
    finally:
        _drop_database(admin_url, name)


async def load_stream(nats_url: str, workload: Workload, n: int) -> float:
    nc = await connect(nats_url, "bench-ledger-publisher")
    try:
        js = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW * 2)
        await provision(js, [streams.USAGE, streams.DLQ], [streams.LEDGER_USAGE])
        if (await js.stream_info(streams.USAGE.name)).state.messages:
            raise SystemExit("the USAGE stream is not empty: run against a fresh NATS (unset NATS_URL)")
        print(f"publishing {n:,} usage events ...", flush=True)
        return await publish(js, workload, n)
    finally:
        await nc.close()


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def publish(js: JetStreamContext, workload: Workload, n: int) -> float:
    """Publish with up to PUBLISH_WINDOW acks outstanding; every ack must be a new message."""
    started = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    for i, event in enumerate(workload.events(n), 1):
        pending.append(
            await js.publish_async(
                subjects.usage(event.user_id), event.to_bytes(), headers={"Nats-Msg-Id": event.id}
            )
        )
        if len(pending) == PUBLISH_WINDOW or i == n:
            acks = await asyncio.gather(*pending)
            assert not any(a.duplicate for a in acks), "a generated event id repeated"
            pending.clear()
            if i % 100_000 == 0:
                print(f"  published {i:,}", flush=True)
    return time.perf_counter() - started


async def run_phase(
    name: str, js: JetStreamContext, ledger: LedgerReplicas, pids: dict[str, int | None], profile: float
) -> dict[str, Any]:
    """Start the service; time first delivery -> everything acked (committed)."""
    last_seq = int((await js.stream_info(streams.USAGE.name)).state.last_seq)
    spawned = time.perf_counter()
    ledger.start()
    started = None
    cpu0: dict[str, float | None] = {}
    profiler = None
    while True:
        try:
            info = await js.consumer_info(streams.USAGE.name, DURABLE)
        except NotFoundError:  # the service has not re-created its durable yet
            await asyncio.sleep(0.05)
            continue
        now = time.perf_counter()
        if started is None and info.delivered.stream_seq > 0:
            started = now
            cpu0 = _cpu(ledger, pids)
            if profile > 0:
                path = REPORTS / f"ledger-replay-py-spy-{name}.txt"
                profiler = (start_profiler(ledger.pid, profile, path), path)
        if info.ack_floor.stream_seq >= last_seq and info.num_ack_pending == 0 and info.num_pending == 0:
            break
        if ledger.exited():
            raise RuntimeError(f"cost-ledger exited during the {name} phase; see {ledger.log_path}")
        await asyncio.sleep(0.1)
    assert started is not None
    elapsed = now - started
    cpu1 = _cpu(ledger, pids)
    counters = ledger.counters()
    result: dict[str, Any] = {
        "events": last_seq,
        "seconds": round(elapsed, 2),
        "events_per_s": round(last_seq / elapsed),
        "startup_seconds": round(started - spawned, 2),
        "cpu_seconds": {k: _delta(cpu0.get(k), v) for k, v in cpu1.items()},
        "service_counters": counters,
    }
    ledger.wait_ready()
    assert ledger.stop() == 0, f"cost-ledger did not drain cleanly; see {ledger.log_path}"
    if profiler is not None:
        proc, path = profiler
        _, err = proc.communicate(timeout=profile + 60)
        result["py_spy"] = (
            summarize_profile(path) if path.exists() else {"error": err.decode(errors="replace")[-500:]}
        )
        result["py_spy_raw"] = str(path.relative_to(ROOT))
    return result


def _cpu(consumer: LedgerReplicas, pids: dict[str, int | None]) -> dict[str, float | None]:
    return {
        "consumer": consumer.cpu(),
        "postgres": cpu_seconds(pids["postgres"], tree=True),
        "nats": cpu_seconds(pids["nats"]),
        "machine_busy": _machine_busy(),
    }


def _machine_busy() -> float:
    """Every process on the machine (it is shared: other work shows up here, not in ours)."""
    c = psutil.cpu_times()
    return float(c.user + c.system + c.nice + getattr(c, "irq", 0) + getattr(c, "softirq", 0))


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 1)


async def check_ledger(database_url: str, expected: Expected) -> dict[str, Any]:
    """Rows = events; every per-user-day and per-plan total = the exact sum of its events."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*), COALESCE(sum(cost_usd), 0), COALESCE(sum(prompt_tokens), 0),"
            " COALESCE(sum(completion_tokens), 0) FROM ledger.usage_events"
        )
        rows, cost, prompt, completion = (await cur.fetchone()) or (0, 0, 0, 0)
        daily = {
            (u, d): (int(n), Decimal(c))
            for u, d, n, c in await (
                await conn.execute("SELECT user_id, day, calls, cost_usd FROM ledger.user_daily_totals")
            ).fetchall()
        }
        plans = {
            (u, p): (int(n), Decimal(c))
            for u, p, n, c in await (
                await conn.execute("SELECT user_id, plan_id, calls, cost_usd FROM ledger.plan_totals")
            ).fetchall()
        }
    assert rows == expected.events, f"{rows} rows for {expected.events} events"
    assert cost == expected.cost, f"events sum to {cost}, expected {expected.cost}"
    assert (prompt, completion) == (expected.prompt_tokens, expected.completion_tokens)
    _same("per-user-day totals", daily, expected.daily)
    _same("per-plan totals", plans, expected.plans)
    daily_cost = sum((c for _, c in daily.values()), Decimal(0))
    assert daily_cost == expected.cost, f"daily totals sum to {daily_cost}, expected {expected.cost}"
    return {
        "rows": rows,
        "total_cost_usd": str(cost),
        "user_days": len(daily),
        "plans": len(plans),
        "exact": True,
    }


def _same(what: str, got: dict[Any, Any], want: dict[Any, Any]) -> None:
    wrong = [k for k in want.keys() | got.keys() if got.get(k) != want.get(k)]
    assert not wrong, f"{what}: {len(wrong)} differ, e.g. " + "; ".join(
        f"{k}: ledger {got.get(k)} expected {want.get(k)}" for k in sorted(wrong, key=str)[:5]
    )


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    workload = Workload(seed=args.seed, shape=args.shape, active=args.active)
    sys.path.insert(0, str(ROOT / "bench"))  # bench/calibration.py, shared with bench/stack
    from calibration import cpu_calibration_ms

    calibration_ms = cpu_calibration_ms()  # before anything of ours runs
    with contextlib.ExitStack() as stack:
        nats_url, nats_pid = os.environ.get("NATS_URL"), None
        if nats_url:
            publish_seconds = await load_stream(nats_url, workload, args.events)
        else:
            with LoadingNats(tmp / "nats") as loader:
                publish_seconds = await load_stream(loader.url, workload, args.events)
            nats = stack.enter_context(
                NatsServer(tmp / "nats", port=loader.port, monitor_port=loader.monitor_port)
            )
            nats_url, nats_pid = nats.url, nats.pid
        database_url, pg_pid = stack.enter_context(postgres(tmp, args.shared_buffers))
        env = {
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "COST_LEDGER_BATCH_SIZE": str(args.batch_size),
            "COST_LEDGER_BATCH_WINDOW_SECONDS": str(args.window),
            "COST_LEDGER_INGEST_CONCURRENCY": str(args.concurrency),
            "TRIPMESH_DATA_DIR": str(tmp / "data"),
        }
        ledger = LedgerReplicas(tmp, env, args.replicas)
        pids = {"postgres": pg_pid, "nats": nats_pid}
        nc = await connect(nats_url, "bench-ledger")
        try:
            js = nc.jetstream()
            stored = int((await js.stream_info(streams.USAGE.name)).state.messages)
            assert stored == args.events, f"USAGE holds {stored} messages after the restart"
            print("fresh: consuming ...", flush=True)
            fresh = await run_phase("fresh", js, ledger, pids, args.profile_seconds)
            fresh["check"] = await check_ledger(database_url, workload.expected)
            print(f"  {fresh['events_per_s']:,} events/s; ledger checked", flush=True)
            await js.delete_consumer(streams.USAGE.name, DURABLE)  # the service re-creates it
            print("duplicates: consuming the whole stream again ...", flush=True)
            dup = await run_phase("duplicates", js, ledger, pids, args.profile_seconds)
            dup["check"] = await check_ledger(database_url, workload.expected)
            assert dup["service_counters"].get("ingested", 0) == 0, "a duplicate replay added rows"
            print(f"  {dup['events_per_s']:,} events/s; ledger unchanged", flush=True)
        finally:
            await nc.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "uv run python bench/ledger/replay.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_calibration_ms": calibration_ms,
        },
        "servers": {
            "nats": "external NATS_URL" if nats_pid is None else "embedded (sync_interval: always)",
            "postgres": "external DATABASE_URL"
            if pg_pid is None
            else f"embedded (fsync on, synchronous_commit on, shared_buffers {args.shared_buffers})",
        },
        "events": args.events,
        "shape": args.shape,
        "active_plans": args.active if args.shape == "stream" else None,
        "batch_size": args.batch_size,
        "window_seconds": args.window,
        "ingest_concurrency": args.concurrency,
        "replicas": args.replicas,
        "publish": {
            "seconds": round(publish_seconds, 1),
            "events_per_s": round(args.events / publish_seconds),
        },
        "fresh": fresh,
        "duplicates": dup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2000, help="COST_LEDGER_BATCH_SIZE")
    parser.add_argument("--window", type=float, default=0.2, help="COST_LEDGER_BATCH_WINDOW_SECONDS")
    parser.add_argument("--concurrency", type=int, default=2, help="COST_LEDGER_INGEST_CONCURRENCY")
    parser.add_argument("--replicas", type=int, default=1, help="cost-ledger processes sharing the durable")
    parser.add_argument(
        "--shared-buffers", default="32MB", help="embedded Postgres's shared_buffers (devstack: 32MB)"
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="stream",
        help="stream: time-ordered, a plan's calls together (what USAGE holds); scattered: random plan/time",
    )
    parser.add_argument("--active", type=int, default=64, help="stream shape: plans in flight at once")
    parser.add_argument(
        "--profile-seconds", type=float, default=0, help="py-spy the consumer for this long in each phase"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        try:
            result = asyncio.run(bench(args, Path(tmp)))
        finally:  # the service's log outlives the temporary directory
            log = Path(tmp) / "cost-ledger-0.log"
            if log.exists():
                REPORTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, REPORTS / "ledger-replay-cost-ledger.log")
    # one report per replica count: `make bench-ledger` runs 1 and 2 (the target is
    # for this machine, and a second consumer process is how an operator scales ingest)
    stem = "ledger-replay" if args.replicas == 1 else f"ledger-replay-{args.replicas}-replicas"
    json_path, md_path = write_reports(result, REPORTS / stem)
    print(md_path.read_text())
    print(f"wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
