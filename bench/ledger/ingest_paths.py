"""Where the consumer's CPU goes per event, piece by piece, in one process (evidence for
bench/ledger/replay.py's figure; not a test, asserts nothing about speed).

On embedded Postgres, for N events in batches of B (fresh rows each time):
- decode: `UsageEvent.model_validate_json` + `UsageRow.from_event` (the ingestor's decode);
- store.ingest: `LedgerStore.ingest` as the service builds it (tier caps: alerts raised);
- store.ingest without alerts (what `rebuild` runs);
- write_batch alone: binary COPY into the stage table + the one insert-and-totals statement;
- store.ingest, all duplicates (a replay of rows already present).
Reports wall seconds and this process's CPU seconds per 1,000 events for each.

    uv run python bench/ledger/ingest_paths.py [--events 50000] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.domain import UsageRow, decode_usage, unique_in_order
from tripmesh_cost_ledger.settings import Settings
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_cost_ledger.writes import write_batch
from tripmesh_devstack import PostgresServer
from tripmesh_kit.pg import make_pool
from workload import Workload


async def write_only(store: LedgerStore, rows: Sequence[UsageRow]) -> None:
    async with store.pool.connection() as conn, conn.transaction():
        await write_batch(conn, unique_in_order(rows))


async def timed(
    label: str, batches: list[list[UsageRow]], step: Callable[[list[UsageRow]], Awaitable[Any]]
) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        await step(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = sum(map(len, batches))
    return {
        "path": label,
        "events": n,
        "events_per_s": round(n / wall),
        "cpu_ms_per_1000": round(cpu / n * 1e6),
    }


async def measure(url: str, n: int, batch_size: int) -> list[dict[str, Any]]:
    await migrate(url)
    pool = make_pool(url, name="ingest-paths", max_size=2)
    await pool.open()
    settings = Settings(database_url=url)
    store = LedgerStore(pool, tier_caps=settings.tier_caps(), plan_cap_default=settings.plan_cap_usd)
    workload = Workload()
    payloads = [e.to_bytes() for e in workload.events(3 * n)]
    results = []
    decoded: list[UsageRow] = []
    wall, cpu = time.perf_counter(), time.process_time()
    decoded = [UsageRow.from_event(decode_usage(p)) for p in payloads]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    results.append({"path": "decode (pydantic + UsageRow)", "events": len(payloads),
                    "events_per_s": round(len(payloads) / wall),
                    "cpu_ms_per_1000": round(cpu / len(payloads) * 1e6)})  # fmt: skip

    def batches(part: int) -> list[list[UsageRow]]:
        rows = decoded[part * n : (part + 1) * n]
        return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    no_alerts = LedgerStore(pool)

    try:
        results.append(await timed("LedgerStore.ingest (service, alerts on)", batches(0), store.ingest))
        results.append(await timed("LedgerStore.ingest (no alerts: rebuild)", batches(1), no_alerts.ingest))
        results.append(
            await timed(
                "write_batch alone (COPY + insert-and-totals)",
                batches(2),
                lambda rows: write_only(store, rows),
            )
        )
        results.append(await timed("LedgerStore.ingest, all duplicates", batches(0), store.ingest))
    finally:
        await pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-ledger-paths-") as tmp,
        PostgresServer(Path(tmp) / "pg") as pg,
    ):
        results = asyncio.run(measure(pg.url, args.events, args.batch_size))
    print("| path | events | events/s | consumer CPU ms per 1,000 events |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['path']} | {r['events']:,} | {r['events_per_s']:,} | {r['cpu_ms_per_1000']} |")


if __name__ == "__main__":
    main()
