"""Measure the ledger's ingest rate on this machine (not a test: speed is for benchmarks).

Preloads N usage events into USAGE on private embedded servers (NATS with
`sync_interval: always`, Postgres), then starts the service exactly as `create_app` builds it
and times from the start of its consumer until the durable is caught up (every message
acked after commit). Prints events/s, batches and the mean batch size.

    uv run python services/cost-ledger/scripts/measure_ingest.py [N] [BATCH_SIZE]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from tripmesh_contracts import UsageEvent, streams, subjects
from tripmesh_cost_ledger import metrics
from tripmesh_cost_ledger.app import create_app
from tripmesh_cost_ledger.settings import Settings
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_kit.bus import Bus, make_broker, provision


async def measure(n: int, batch_size: int, nats_url: str, database_url: str) -> None:
    client = make_broker(nats_url, "measure")
    await client.connect()
    bus = Bus(client)
    await provision(bus.js)
    js = bus.js
    for start in range(0, n, 1000):  # preload, pipelined
        chunk = [
            UsageEvent(
                user_id=f"user-{i % 50}",
                plan_id=f"plan-{i % 400}",
                agent="planning",
                model="gpt-5-mini",
                provider="openai",
                cost_usd=Decimal("0.00012345"),
                prompt_tokens=900,
                completion_tokens=300,
            )
            for i in range(start, min(n, start + 1000))
        ]
        await asyncio.gather(
            *(
                js.publish(subjects.usage(e.user_id), e.to_bytes(), headers={"Nats-Msg-Id": e.id})
                for e in chunk
            )
        )
    settings = Settings(nats_url=nats_url, database_url=database_url, batch_size=batch_size)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        while True:
            info = await js.consumer_info(streams.USAGE.name, streams.LEDGER_USAGE.durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    await client.stop()
    hist = {s.name: s.value for s in metrics.BATCH_SIZE.collect()[0].samples}
    batches, total = hist["tripmesh_ledger_batch_size_count"], hist["tripmesh_ledger_batch_size_sum"]
    print(
        f"{n} events in {elapsed:.2f} s = {n / elapsed:,.0f} events/s;"
        f" {batches:.0f} batches, mean {total / batches:.0f} per batch (max {batch_size})"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    batch_size = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with (
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(Path(tmp) / "nats") as nats,
        PostgresServer(Path(tmp) / "pg") as pg,
    ):
        asyncio.run(measure(n, batch_size, nats.url, pg.url))


if __name__ == "__main__":
    main()
