"""Where the consumer's CPU goes per event, piece by piece, in one process (evidence for
bench/ledger/replay.py's figure; not a test, asserts nothing about speed).

On embedded Postgres, for N events in batches of B (fresh rows each time):
- decode: `UsageEvent.model_validate_json` + `UsageRow.from_event` (the ingestor's decode);
- store.ingest: `LedgerStore.ingest` as the service builds it (tier caps: alerts raised);
- insert + totals: the same minus reservations/alerts (`_insert_rows` + `_add_totals`);
- COPY variant: the batch COPYed (binary) into a temporary table, `INSERT ... SELECT ... ON
  CONFLICT DO NOTHING RETURNING event_id`, the totals from the rows in hand (a sketch of a
  possible fix, written here, not in the service).
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

from psycopg import sql
from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.domain import COLUMNS, UsageRow, aggregate, decode_usage
from tripmesh_cost_ledger.settings import Settings
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_devstack import PostgresServer
from tripmesh_kit.pg import make_pool
from workload import Workload

_STAGE = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS stage_usage (LIKE ledger.usage_events INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
COPY_TYPES = (  # COLUMNS' types, in order
    *("text", "text", "text", "text", "text", "int4", "text", "text", "text", "int8", "int8", "numeric"),
    *("int8", "int4", "bool", "bool", "text", "text", "text", "bool", "timestamptz"),
)
_FROM_STAGE = sql.SQL(
    "INSERT INTO ledger.usage_events ({cols}) SELECT {cols} FROM stage_usage ORDER BY event_id"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
).format(cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


async def copy_variant(store: LedgerStore, rows: Sequence[UsageRow]) -> None:
    async with store.pool.connection() as conn, conn.transaction():
        await conn.execute(_STAGE)
        cur = conn.cursor()
        copy_sql = sql.SQL("COPY stage_usage ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        async with cur.copy(copy_sql) as copy:
            copy.set_types(list(COPY_TYPES))
            for row in rows:
                await copy.write_row([getattr(row, c) for c in COLUMNS])
        added = {r[0] for r in await (await conn.execute(_FROM_STAGE)).fetchall()}
        await store._add_totals(conn, aggregate(r for r in rows if r.event_id in added))


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

    async def plain(rows: list[UsageRow]) -> None:
        async with store.pool.connection() as conn, conn.transaction():
            await store._add_totals(conn, aggregate(await store._insert_rows(conn, rows)))

    try:
        results.append(await timed("LedgerStore.ingest (service, alerts on)", batches(0), store.ingest))
        results.append(await timed("insert RETURNING * + totals (no alerts)", batches(1), plain))
        results.append(
            await timed(
                "COPY binary + INSERT..SELECT RETURNING id + totals",
                batches(2),
                lambda rows: copy_variant(store, rows),
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
