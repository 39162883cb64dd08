"""Measure vector-sync as operators run it (issue #7): sync lag under a burst, search p99 at
N points, embed time per plan. Writes reports/bench/vectors-<timestamp>.{json,md}.

  uv run python bench/vectors/measure.py [--burst 500] [--rate 0] [--points 5000] [--users 10]
                                         [--searches 200]

What it does:
1. starts a private nats-server (tripmesh_devstack.nats.NatsServer) and the real service
   process `python -m tripmesh_vector_sync` configured only by env (as `make up` does), on
   local Qdrant storage in a temp data dir, with LOG_LEVEL=DEBUG and JSON logs;
2. publishes `--burst` PlanChanged messages (realistic snapshots, `--users` users) as fast
   as JetStream acks them, or `--rate` per second (the lag of a change that does not queue
   behind hundreds of others); per-message lag = the service's `plan_change_applied` log
   timestamp (written after the plan point is upserted, i.e. searchable) minus the
   message's occurred_at (stamped just before its publish; same machine clock). The
   /metrics histogram `tripmesh_vector_sync_lag_seconds` (same interval) is reported too;
3. tops the collection up to `--points` plans, then times `--searches` sequential
   svc.vectors.search and svc.vectors.similar requests end to end over NATS request/reply;
4. stops the service (SIGTERM), opens the same local storage in-process and times the raw
   store call `VectorStore.search_plans` (tenant-filtered query_points);
5. runs `measure_embed` (the same as `python -m tripmesh_vector_sync measure-embed`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import PlanChanged
from tripmesh_contracts.rpc import SearchPlansRequest, SearchReply, SimilarPlansRequest
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.ports import free_port
from tripmesh_kit.bus import Bus, make_broker
from tripmesh_vector_sync.collections import CollectionNames
from tripmesh_vector_sync.embedders import build_embedder
from tripmesh_vector_sync.filters import TenantFilter
from tripmesh_vector_sync.measure import measure_embed, sample_snapshots
from tripmesh_vector_sync.settings import Settings
from tripmesh_vector_sync.store import VectorStore, open_client

ROOT = Path(__file__).resolve().parents[2]
QUERIES = [
    "Lisbon and Porto food trip",
    "hiking in Norway",
    "temples in autumn",
    "beach with kids",
    "museums",
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": round(pct(seconds, 50) * 1000, 1),
        "p99_ms": round(pct(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "mean_ms": round(statistics.mean(seconds) * 1000, 1),
    }


def changes(start: int, count: int, users: int) -> list[PlanChanged]:
    snaps = sample_snapshots(start + count)[start:]
    return [
        PlanChanged(
            user_id=f"bench-user-{(start + i) % users}",
            plan_id=f"bench-plan-{start + i}",
            version=1,
            snapshot=s,
        )
        for i, s in enumerate(snaps)
    ]


async def wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1200):
            if proc.returncode is not None:
                raise RuntimeError("vector-sync exited during start-up")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("vector-sync never became ready")


def applied_at(log_path: Path) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for line in log_path.read_text().splitlines():
        if '"plan_change_applied"' not in line:
            continue
        record = json.loads(line)
        out[record["plan_id"]] = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    return out


async def wait_applied(log_path: Path, plan_ids: set[str], timeout: float) -> dict[str, datetime]:
    deadline = time.monotonic() + timeout
    while True:
        seen = applied_at(log_path)
        if plan_ids <= seen.keys():
            return seen
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(plan_ids - seen.keys())} changes never applied")
        await asyncio.sleep(0.5)


def lag_histogram(metrics_text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("tripmesh_vector_sync_lag_seconds_"):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("tripmesh_vector_sync_lag_seconds_")] = float(value)
    return out


async def timed_requests(bus_client: Any, subject: str, bodies: list[bytes]) -> list[float]:
    times: list[float] = []
    for body in bodies:
        t0 = time.perf_counter()
        response = await bus_client.request(body, subject, timeout=30)
        times.append(time.perf_counter() - t0)
        reply = SearchReply.model_validate_json(response.body)
        if reply.error is not None or not reply.hits:
            raise RuntimeError(f"{subject} answered {reply}")
    return times


async def raw_store_search(data_dir: Path, users: int, n: int) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir)
    embedder = build_embedder(settings)
    store = VectorStore(
        open_client(None, str(settings.resolved_qdrant_path())), CollectionNames.with_prefix()
    )
    vectors = embedder.embed(QUERIES)
    times: list[float] = []
    try:
        for i in range(n):
            tenant = TenantFilter(f"bench-user-{i % users}")
            t0 = time.perf_counter()
            await store.search_plans(vectors[i % len(vectors)], tenant, 10)
            times.append(time.perf_counter() - t0)
        total = await store.count(store.names.plans)
    finally:
        await store.close()
    return {"points": total, **summary_ms(times)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    nats = NatsServer(work / "nats")
    nats.start()
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats.url,
        "TRIPMESH_DATA_DIR": str(work / "data"),
        "VECTOR_SYNC_HTTP_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
    }
    for key in ("QDRANT_URL", "VECTOR_SYNC_QDRANT_PATH", "VECTOR_SYNC_COLLECTION_PREFIX"):
        env.pop(key, None)
    log_path = work / "vector-sync.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tripmesh_vector_sync",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    broker = make_broker(nats.url, "bench-vectors")
    result: dict[str, Any] = {"embedder_env": os.environ.get("VECTOR_SYNC_EMBEDDER", "wordllama (default)")}
    try:
        await wait_ready(port, proc)
        await broker.connect()
        bus = Bus(broker)
        # (a) the burst: occurred_at is stamped right before each publish
        burst = changes(0, args.burst, args.users)
        published: dict[str, datetime] = {}
        t0 = time.perf_counter()
        for i, change in enumerate(burst):
            if args.rate > 0:  # paced: the lag of a change that does not queue behind a burst
                await asyncio.sleep(max(0.0, t0 + i / args.rate - time.perf_counter()))
            change = change.model_copy(update={"occurred_at": datetime.now(UTC)})
            published[change.plan_id] = change.occurred_at
            await bus.publish(change, subjects.plan_changed(change.plan_id))
        publish_seconds = time.perf_counter() - t0
        applied = await wait_applied(log_path, set(published), timeout=1800)
        lags = [(applied[p] - published[p]).total_seconds() for p in published]
        drain = (max(applied[p] for p in published) - min(published.values())).total_seconds()
        async with httpx.AsyncClient() as client:
            hist = lag_histogram((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
        result["sync_lag"] = {
            "burst": args.burst,
            "rate": args.rate,
            "users": args.users,
            "publish_seconds": round(publish_seconds, 2),
            "burst_drained_seconds": round(drain, 2),
            "throughput_changes_per_s": round(args.burst / drain, 1),
            **{k.replace("_ms", "_s"): round(v / 1000, 3) for k, v in summary_ms(lags).items() if k != "n"},
            "metrics_histogram": {
                "count": hist.get("count"),
                "mean_s": round(hist["sum"] / hist["count"], 3),
            },
            "source": "per message: service log plan_change_applied timestamp - occurred_at at publish",
        }
        # (b) top up to --points, then search over NATS request/reply
        rest = changes(args.burst, args.points - args.burst, args.users)
        for change in rest:
            await bus.publish(change, subjects.plan_changed(change.plan_id))
        await wait_applied(log_path, {c.plan_id for c in rest}, timeout=3600)
        search_bodies = [
            SearchPlansRequest(user_id=f"bench-user-{i % args.users}", q=QUERIES[i % len(QUERIES)]).to_bytes()
            for i in range(args.searches)
        ]
        similar_bodies = [
            SimilarPlansRequest(
                user_id=f"bench-user-{i % args.users}",
                plan_id=f"bench-plan-{i * 7 % args.points // args.users * args.users + i % args.users}",
            ).to_bytes()
            for i in range(args.searches)
        ]
        await timed_requests(broker, subjects.SVC_VECTORS_SEARCH, search_bodies[:5])  # warm-up
        result["search_nats"] = summary_ms(
            await timed_requests(broker, subjects.SVC_VECTORS_SEARCH, search_bodies)
        )
        result["similar_nats"] = summary_ms(
            await timed_requests(broker, subjects.SVC_VECTORS_SIMILAR, similar_bodies)
        )
    finally:
        await broker.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 120)
        nats.stop()
    # (b') the raw store call, in-process, on the same storage (the service has released it)
    try:
        result["store_search_plans"] = await raw_store_search(work / "data", args.users, args.searches)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["points"] = result["store_search_plans"]["points"]
    result["note"] = (
        "local mode: every query is a linear scan over all points of the collection "
        "(filter checked per point in Python); payload indexes have no effect"
    )
    # (c) embed time per plan
    result["embed"] = measure_embed(Settings(), 500)
    return result


def _lag_load(lag: dict[str, Any]) -> str:
    rate = lag.get("rate") or 0
    return f"{lag['burst']} changes at {rate:g}/s" if rate > 0 else f"burst of {lag['burst']}"


def markdown(result: dict[str, Any], command: str) -> str:
    lag = result["sync_lag"]
    rows = [
        "| measure | n | p50 | p99 | max | mean |",
        "|---|---|---|---|---|---|",
        f"| sync lag, {_lag_load(lag)} (publish → point written) | {lag['burst']} "
        f"| {lag['p50_s']} s | {lag['p99_s']} s | {lag['max_s']} s | {lag['mean_s']} s |",
    ]
    for key, label in (
        ("search_nats", "svc.vectors.search over NATS"),
        ("similar_nats", "svc.vectors.similar over NATS"),
        ("store_search_plans", "raw VectorStore.search_plans"),
    ):
        s = result[key]
        rows.append(
            f"| {label} at {result['points']} points | {s['n']} | {s['p50_ms']} ms "
            f"| {s['p99_ms']} ms | {s['max_ms']} ms | {s['mean_ms']} ms |"
        )
    e = result["embed"]
    return "\n".join(
        [
            f"# vector-sync measurements ({result['measured_at']})",
            "",
            f"Command: `{command}`  ",
            f"Machine: {result['machine']}  ",
            f"Embedder: {e['embedder']} ({e['dim']}-d)",
            "",
            *rows,
            "",
            f"Burst: published in {lag['publish_seconds']} s, drained in {lag['burst_drained_seconds']} s "
            f"({lag['throughput_changes_per_s']} changes/s, one at a time). Lag source: {lag['source']}; "
            f"/metrics histogram mean {lag['metrics_histogram']['mean_s']} s "
            f"over {lag['metrics_histogram']['count']} observations.",
            "",
            f"Embed per plan: single call median {e['single_call_ms_median']} ms "
            f"(p95 {e['single_call_ms_p95']} ms), "
            f"batched {e['batch_ms_per_text']} ms/text, load {e['load_seconds']} s.",
            "",
            f"Note: {result['note']}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=500, help="plan changes published as one burst")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="publish the --burst changes at this many per second (0: at once)",
    )
    parser.add_argument("--points", type=int, default=5000, help="plans in the collection when searching")
    parser.add_argument("--users", type=int, default=10, help="distinct users owning the plans")
    parser.add_argument("--searches", type=int, default=200, help="timed requests per search kind")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result["measured_at"] = stamp
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = "uv run python bench/vectors/measure.py " + " ".join(sys.argv[1:])
    result["command"] = command.strip()
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"vectors-{stamp}.json").write_text(json.dumps(result, indent=2))
    (out / f"vectors-{stamp}.md").write_text(markdown(result, result["command"]))
    print(markdown(result, result["command"]))


if __name__ == "__main__":
    main()
