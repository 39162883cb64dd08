"""Operator entry point: rebuild the ledger from the USAGE stream (`tripctl ledger rebuild`).

Empties the derived tables (usage events and running totals; budgets are configuration and
stay), then replays USAGE from its first message through the same `BatchIngestor` the live
consumer uses, up to the stream's last sequence as read *after* the truncate. That makes it
safe beside a running service: every event at or below that sequence is replayed (if the
live consumer had already stored it, the replay's insert finds it and adds nothing), and
every later one reaches the live durable consumer as usual.

USAGE keeps 35 days; a ledger holding more events than the stream has messages would lose
history, so `rebuild` refuses unless forced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from tripmesh_contracts import new_id, streams, subjects
from tripmesh_kit.bus import connect
from tripmesh_kit.logging import get_logger
from tripmesh_kit.pg import make_pool

from tripmesh_cost_ledger.app import migrate
from tripmesh_cost_ledger.ingest import BatchIngestor
from tripmesh_cost_ledger.store import LedgerStore

log = get_logger(__name__)


class RebuildRefusedError(RuntimeError):
    """The replay would end with less than the ledger holds now."""


@dataclass
class RebuildReport:
    events_before: int
    stream_messages: int
    replayed_up_to_seq: int
    messages_read: int
    ingested: int
    duplicates: int
    skipped: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def rebuild(dsn: str, nats_url: str, *, force: bool = False, batch_size: int = 500) -> RebuildReport:
    await migrate(dsn)
    pool = make_pool(dsn, name="cost-ledger-rebuild", max_size=2)
    await pool.open()
    nc = await connect(nats_url, "cost-ledger-rebuild")
    try:
        store = LedgerStore(pool)
        js = nc.jetstream()
        before = await store.count_events()
        stream_messages = int((await js.stream_info(streams.USAGE.name)).state.messages)
        if before > stream_messages and not force:
            raise RebuildRefusedError(
                f"the ledger holds {before} events but the USAGE stream only {stream_messages}"
                " messages (older ones expired): a rebuild would lose history; use --force"
            )
        await store.truncate_derived()
        state = (await js.stream_info(streams.USAGE.name)).state
        target = int(state.last_seq)
        ingestor = BatchIngestor(store, None, replay=True)
        read = await _replay(js, ingestor, target, batch_size) if state.messages else 0
        stats = ingestor.stats
        report = RebuildReport(
            before, stream_messages, target, read, stats.ingested, stats.duplicates, stats.rejected
        )
        log.info("ledger_rebuilt", **report.as_dict())
        return report
    finally:
        await nc.close()
        await pool.close()


async def _replay(js: JetStreamContext, ingestor: BatchIngestor, target: int, batch_size: int) -> int:
    """Feed USAGE[first .. target] to `ingestor` in batches through an ephemeral consumer."""
    stream = streams.USAGE.name
    name = f"cost-ledger-rebuild-{new_id()[:8]}"
    await js.add_consumer(
        stream,
        api.ConsumerConfig(
            name=name,
            filter_subject=subjects.USAGE_ALL,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=60,
            max_ack_pending=batch_size * 2,
            inactive_threshold=300,
            mem_storage=True,
        ),
    )
    sub = await js.pull_subscribe_bind(consumer=name, stream=stream)
    read = 0
    try:
        while True:
            try:
                msgs: list[Msg] = await sub.fetch(batch_size, timeout=2)
            except TimeoutError:
                info = await js.consumer_info(stream, name)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return read  # the target message itself expired or was deleted
                continue
            wanted = [m for m in msgs if m.metadata.sequence.stream <= target]
            read += len(wanted)
            if wanted:
                await ingestor.handle(wanted)
            for m in msgs[len(wanted) :]:
                await m.ack()  # beyond the target: the live consumer's business
            last = msgs[-1].metadata
            if last.sequence.stream >= target or last.num_pending == 0:
                return read
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream, name)
