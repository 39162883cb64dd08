"""Batch ingestion of `usage.llm.>` messages: decode, one transaction, ack after commit.

Per batch:
- undecodable messages go to the DLQ one by one (with the error) and are acked;
- the decodable ones are inserted in ONE transaction (`LedgerStore.ingest`), then all acked;
- a Postgres outage never dead-letters or naks: the batch is retried with backoff while every
  message gets in-progress acks, so the consumer stops fetching and catches up by itself when
  the database returns (`run_through_outage`);
- any other failure of the batch (the database refuses some row: a value out of range, a NUL
  byte in a string) is retried in halves, split again while refused, down to one message,
  so one bad event goes to the DLQ instead of holding back the rest (in ~2 log2(n)
  transactions, not n).

The same code serves the live durable consumer and an operator's replay (`rebuild`), which
only differ in what happens to a message that can never be ingested (dead-lettered live;
counted and skipped on replay, since it was dead-lettered when it first arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import psycopg
from nats.aio.msg import Msg
from tripmesh_contracts.streams import LEDGER_USAGE, ConsumerSpec
from tripmesh_kit import metrics as kit_metrics
from tripmesh_kit import pg
from tripmesh_kit.bus import Bus
from tripmesh_kit.consume import dead_letter, nak_delay, run_through_outage
from tripmesh_kit.logging import get_logger
from tripmesh_kit.loops import pause

from tripmesh_cost_ledger import metrics
from tripmesh_cost_ledger.domain import DECODE_ERRORS, UsageRow, decode_usage
from tripmesh_cost_ledger.store import LedgerStore
from tripmesh_cost_ledger.tracing import ledger_write_spans

log = get_logger(__name__)

REFUSED_BY_DATABASE = (psycopg.DataError, psycopg.IntegrityError)
"""Deterministic: the same row is refused again on every retry."""


def deliveries(raw: Msg) -> int:
    """The delivery count from the ack subject, `$JS.ACK.<stream>.<consumer>.<delivered>...`
    (9 tokens; 12 or more with a domain and account hash). `Msg.metadata` parses the whole
    subject into objects: measurably slower at thousands of messages a second."""
    tokens = (raw.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[4])
    if len(tokens) >= 12:
        return int(tokens[6])
    return raw.metadata.num_delivered


@dataclass
class IngestStats:
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0


class BatchIngestor:
    def __init__(
        self,
        store: LedgerStore,
        bus: Bus | None,
        *,
        spec: ConsumerSpec = LEDGER_USAGE,
        replay: bool = False,
        is_store_outage: Callable[[BaseException], bool] = pg.is_store_outage,
        outage_give_up_after: float = 900.0,
        on_alerts: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if bus is None and not replay:
            raise ValueError("the live consumer needs a bus to dead-letter to")
        self.store = store
        self.bus = bus
        self.spec = spec
        self.replay = replay
        self.is_store_outage = is_store_outage
        self.outage_give_up_after = outage_give_up_after
        self.on_alerts = on_alerts
        """Publishes the alerts a batch raised, after its commit (the sweeper retries)."""
        self.stats = IngestStats()

    async def handle(self, raws: Sequence[Msg]) -> None:
        """Ingest one fetched batch and ack / dead-letter / nak every message in it."""
        started = time.perf_counter()
        metrics.BATCH_SIZE.observe(len(raws))
        decoded: list[tuple[Msg, UsageRow]] = []
        for raw in raws:
            if deliveries(raw) > 1:
                kit_metrics.MESSAGES_REDELIVERED.labels(consumer=self.spec.durable).inc()
            try:
                decoded.append((raw, UsageRow.from_event(decode_usage(raw.data))))
            except DECODE_ERRORS as exc:
                await self._reject(raw, f"undecodable UsageEvent: {exc}", "undecodable")
        if decoded:
            async with self._heartbeats([raw for raw, _ in decoded]):
                try:
                    with ledger_write_spans(decoded):
                        await self._through_outage([row for _, row in decoded])
                except Exception as exc:
                    if self.is_store_outage(exc):
                        raise  # outage beyond give_up_after: leave unacked, AckWait redelivers
                    log.warning(
                        "batch_refused_isolating_the_bad_rows",
                        size=len(decoded),
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                    await self._halves(decoded)
                else:
                    for raw, _ in decoded:
                        await raw.ack()
                    self._handled("ok", len(decoded))
        metrics.INGEST_SECONDS.observe(time.perf_counter() - started)

    async def _ingest(self, rows: Sequence[UsageRow]) -> None:
        result = await self.store.ingest(rows)
        self.stats.ingested += len(result.inserted)
        self.stats.duplicates += result.duplicates
        metrics.EVENTS_INGESTED.inc(len(result.inserted))
        metrics.DUPLICATES.inc(result.duplicates)
        if result.alerts and self.on_alerts is not None:
            try:
                await self.on_alerts()
            except Exception as exc:  # committed in the outbox: the sweeper publishes it later
                log.warning("cost_alert_publish_deferred", error=f"{type(exc).__name__}: {exc}"[:300])

    async def _through_outage(self, rows: Sequence[UsageRow]) -> None:
        await run_through_outage(
            functools.partial(self._ingest, rows),
            self.is_store_outage,
            give_up_after=self.outage_give_up_after,
        )

    async def _halves(self, decoded: Sequence[tuple[Msg, UsageRow]]) -> None:
        """Ingest a refused batch as two halves, each split again while refused: one bad row
        in 2,000 costs ~2 log2(2,000) = 22 transactions, not 2,000 (issue #12's poison test:
        the valid messages of that batch waited seconds for their one-row transactions)."""
        if len(decoded) <= 1:
            await self._one_by_one(decoded)
            return
        middle = len(decoded) // 2
        for half in (decoded[:middle], decoded[middle:]):
            try:
                await self._through_outage([row for _, row in half])
            except Exception as exc:
                if self.is_store_outage(exc):
                    raise
                await self._halves(half)  # one message left: _one_by_one decides, as before
                continue
            for raw, _ in half:
                await raw.ack()
            self._handled("ok", len(half))

    async def _one_by_one(self, decoded: Sequence[tuple[Msg, UsageRow]]) -> None:
        for raw, row in decoded:
            try:
                await self._through_outage([row])
            except REFUSED_BY_DATABASE as exc:
                await self._reject(raw, f"refused by the ledger database: {exc}", "permanent")
                continue
            except Exception as exc:
                if self.replay or self.is_store_outage(exc):
                    raise
                await self._retry_later(raw, exc)
                continue
            await raw.ack()
            self._handled("ok")

    async def _retry_later(self, raw: Msg, exc: Exception) -> None:
        """An unexpected error: nak with the spec's delay; the last delivery goes to the DLQ."""
        delivered = deliveries(raw)
        error = f"{type(exc).__name__}: {exc}"
        if delivered >= self.spec.max_deliver:
            await self._reject(raw, error, "max_deliver")
            return
        log.warning("usage_event_failed_will_retry", error=error[:300], delivered=delivered)
        await raw.nak(delay=nak_delay(self.spec, delivered))
        self._handled("retry")

    async def _reject(self, raw: Msg, error: str, kind: str) -> None:
        self.stats.rejected += 1
        metrics.REJECTED.labels(reason=kind).inc()
        if self.replay:
            log.warning(
                "replay_skipped_message",
                subject=raw.subject,
                error_kind=kind,
                seq=raw.metadata.sequence.stream,
                error=error[:300],
            )
        else:
            assert self.bus is not None
            await dead_letter(self.bus, raw, self.spec, error, kind)
        await raw.ack()
        self._handled("dead_lettered")

    def _handled(self, outcome: str, count: int = 1) -> None:
        kit_metrics.MESSAGES_HANDLED.labels(consumer=self.spec.durable, outcome=outcome).inc(count)

    @contextlib.asynccontextmanager
    async def _heartbeats(self, raws: Sequence[Msg]) -> AsyncIterator[None]:
        """In-progress acks for every message of the batch while it waits on the database.

        What `tripmesh_kit.consume.in_progress_heartbeat` does for one message, with one task
        for the whole batch instead of one per message (500 tasks per batch cost more than
        the insert)."""
        every = max(self.spec.ack_wait_seconds / 3, 1.0)

        async def beat() -> None:
            while True:
                await pause(every)
                for raw in raws:
                    with contextlib.suppress(Exception):
                        await raw.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
