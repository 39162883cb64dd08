"""`rebuild`: truncate and replay USAGE through the live ingest code -> the same ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts import UsageEvent, new_id
from tripmesh_cost_ledger.rebuild import RebuildRefusedError, rebuild

pytestmark = pytest.mark.integration

MakeUsage = Callable[..., UsageEvent]


async def fill(ledger: Any, make_usage: MakeUsage, count: int) -> list[UsageEvent]:
    events = [
        make_usage(f"user-{i % 3}", plan_id=f"plan-{i % 5}", cost=f"0.0{i % 10}1") for i in range(count)
    ]
    await ledger.publish(*events)
    for event in events[:7]:  # replayed copies as separate stream messages
        await ledger.publish_raw(event.to_bytes(), event.user_id, msg_id=new_id())
    await ledger.publish_raw(b"garbage", "user-0", msg_id="garbage-1")
    await ledger.wait_until(lambda: ledger.caught_up())
    return events


async def test_rebuild_ends_with_the_same_ledger(ledger: Any, make_usage: MakeUsage) -> None:
    events = await fill(ledger, make_usage, 60)
    before = await ledger.state()
    assert len(before[0]) == len(events)

    report = await rebuild(ledger.settings.database_url, ledger.settings.nats_url, batch_size=16)
    assert await ledger.state() == before
    assert (report.events_before, report.ingested, report.duplicates, report.skipped) == (60, 60, 7, 1)
    assert report.messages_read == report.stream_messages == 68

    # the live consumer carries on afterwards, and a second rebuild is a no-op
    late = make_usage("user-0", plan_id="plan-0", cost="1")
    await ledger.publish(late)
    await ledger.wait_until(lambda: ledger.caught_up())
    after = await ledger.state()
    await rebuild(ledger.settings.database_url, ledger.settings.nats_url)
    assert await ledger.state() == after
    assert len(after[0]) == 61


async def test_rebuild_while_events_keep_arriving(ledger: Any, make_usage: MakeUsage) -> None:
    await fill(ledger, make_usage, 30)
    more = [make_usage("user-9", plan_id="plan-9", cost="0.5") for _ in range(200)]

    async def keep_publishing() -> None:
        for event in more:
            await ledger.publish(event)

    publisher = asyncio.create_task(keep_publishing())
    await rebuild(ledger.settings.database_url, ledger.settings.nats_url, batch_size=8)
    await publisher
    await ledger.wait_until(lambda: ledger.caught_up())
    assert await ledger.count_events() == 230
    total = await ledger.fetch("SELECT calls, cost_usd FROM ledger.plan_totals WHERE plan_id = 'plan-9'")
    assert total == [(200, Decimal(100))]


async def test_rebuild_refuses_to_lose_history(ledger: Any, make_usage: MakeUsage) -> None:
    await fill(ledger, make_usage, 10)
    await ledger.bus.js.purge_stream("USAGE")  # as if the messages had expired
    before = await ledger.state()
    with pytest.raises(RebuildRefusedError):
        await rebuild(ledger.settings.database_url, ledger.settings.nats_url)
    assert await ledger.state() == before
    report = await rebuild(ledger.settings.database_url, ledger.settings.nats_url, force=True)
    assert report.ingested == 0 and await ledger.count_events() == 0


async def test_rebuild_command_line(ledger: Any, make_usage: MakeUsage) -> None:
    await fill(ledger, make_usage, 12)
    before = await ledger.state()
    env = {
        **os.environ,
        "COST_LEDGER_DATABASE_URL": ledger.settings.database_url,
        "NATS_URL": ledger.settings.nats_url,
        "LOG_FORMAT": "json",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tripmesh_cost_ledger", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["ingested"] == 12
    assert await ledger.state() == before
