"""Reliable JetStream message handling, the same in every service (ARCHITECTURE.md §2, §8).

FastStream's default ack policy terminates a message on *any* exception; we declare
`AckPolicy.MANUAL` on every subscriber and decide here, explicitly:

- undecodable / schema-invalid / `PermanentError`  -> copy to `dlq.<subject>` with the
  error, then ack (it can never succeed; redelivering it only delays the queue);
- a store outage (`is_store_outage(exc)`)          -> retry *inside* the handler with
  backoff and in-progress acks: the consumer pauses instead of burning deliveries, so no
  message is dead-lettered because Postgres was down;
- any other exception (`TransientError`, timeouts) -> `nak(delay)` from the spec's delays
  (JetStream's BackOff applies only to ack timeouts, not to naks); on the last allowed
  delivery it goes to the DLQ instead, so nothing is silently dropped at `max_deliver`.

Retry owner for a message: JetStream (redelivery). Handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.streams import ConsumerSpec

from tripmesh_kit import metrics, telemetry
from tripmesh_kit.bus import MSG_ID, Bus
from tripmesh_kit.logging import bind_context, get_logger, unbind_context
from tripmesh_kit.loops import pause

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

DLQ_ERROR = "Tripmesh-Dlq-Error"
DLQ_ERROR_KIND = "Tripmesh-Dlq-Error-Kind"
DLQ_SUBJECT = "Tripmesh-Dlq-Subject"
DLQ_STREAM = "Tripmesh-Dlq-Stream"
DLQ_SEQ = "Tripmesh-Dlq-Stream-Seq"
DLQ_DELIVERIES = "Tripmesh-Dlq-Deliveries"
DLQ_CONSUMER = "Tripmesh-Dlq-Consumer"


class PermanentError(Exception):
    """Deterministic failure: retrying cannot help. The message goes to the DLQ."""


class TransientError(Exception):
    """May succeed later: the message is nak'ed with a delay."""


def never(_: BaseException) -> bool:
    return False


def nak_delay(spec: ConsumerSpec, delivered: int) -> float:
    delays = spec.nak_delays_seconds or [5.0]
    return delays[min(max(delivered, 1), len(delays)) - 1]


async def dead_letter(bus: Bus, raw: Msg, spec: ConsumerSpec, error: str, kind: str) -> None:
    """Republish the original payload and headers to `dlq.<subject>` with the error."""
    meta = raw.metadata
    headers = {k: v for k, v in (raw.headers or {}).items() if k != MSG_ID}
    headers.update(
        {
            DLQ_ERROR: error[:2000].replace("\r", " ").replace("\n", " "),
            DLQ_ERROR_KIND: kind,
            DLQ_SUBJECT: raw.subject,
            DLQ_STREAM: meta.stream,
            DLQ_SEQ: str(meta.sequence.stream),
            DLQ_DELIVERIES: str(meta.num_delivered),
            DLQ_CONSUMER: spec.durable,
        }
    )
    # one DLQ entry per original message, even if this handler runs twice
    msg_id = f"dlq-{meta.stream}-{meta.sequence.stream}"
    await bus.publish_raw(raw.data, subjects.dlq(raw.subject), msg_id=msg_id, headers=headers)
    metrics.MESSAGES_DEAD_LETTERED.labels(consumer=spec.durable, kind=kind).inc()
    log.warning("dead_lettered", subject=raw.subject, error_kind=kind, error=error[:300])


@contextlib.asynccontextmanager
async def in_progress_heartbeat(raw: Msg, every: float) -> AsyncIterator[None]:
    """Keep telling JetStream we're alive so long work doesn't hit AckWait."""

    async def beat() -> None:
        while True:
            await pause(every)
            with contextlib.suppress(Exception):
                await raw.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_through_outage(
    work: Callable[[], Awaitable[T]],
    is_store_outage: Callable[[BaseException], bool],
    *,
    first_delay: float = 0.5,
    max_wait: float = 10.0,
    give_up_after: float = 900.0,
    on_retry: Callable[[BaseException, float, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`work`'s value, retried while a store is down (the caller holds a heartbeat).

    Pauses double from `first_delay` up to `max_wait`; it gives up (re-raises) when the next
    pause would end past `give_up_after` seconds from the first attempt. `on_retry(exc, waited,
    delay)` replaces the default log line before each pause; the retry metric counts always."""
    delay, started = first_delay, clock()
    while True:
        try:
            return await work()
        except Exception as exc:
            waited = clock() - started
            if not is_store_outage(exc) or waited + delay > give_up_after:
                raise
            if on_retry is None:
                log.warning("store_unavailable_retrying", error=str(exc)[:200], retry_in=delay)
            else:
                on_retry(exc, waited, delay)
            metrics.STORE_OUTAGE_RETRIES.inc()
            await sleep(delay)
            delay = min(delay * 2, max_wait)


async def handle_message(
    raw: Msg,
    model: type[M],
    work: Callable[[M], Awaitable[None]],
    *,
    spec: ConsumerSpec,
    bus: Bus,
    is_store_outage: Callable[[BaseException], bool] = never,
) -> None:
    """Decode `raw` as `model`, run `work`, and ack / nak / dead-letter explicitly."""
    meta = raw.metadata
    delivered = meta.num_delivered
    started = time.perf_counter()
    if delivered > 1:
        metrics.MESSAGES_REDELIVERED.labels(consumer=spec.durable).inc()
    try:
        payload = model.model_validate_json(raw.data)
    except ValidationError as exc:
        await dead_letter(bus, raw, spec, f"undecodable {model.__name__}: {exc}", "undecodable")
        await raw.ack()
        metrics.MESSAGES_HANDLED.labels(consumer=spec.durable, outcome="dead_lettered").inc()
        return
    bind_context(plan_id=getattr(payload, "plan_id", None), user_id=getattr(payload, "user_id", None))
    traced = telemetry.enter_message(
        raw.headers, plan_id=getattr(payload, "plan_id", None), user_id=getattr(payload, "user_id", None)
    )
    outcome = "ok"
    try:
        async with in_progress_heartbeat(raw, every=max(spec.ack_wait_seconds / 3, 1.0)):
            await run_through_outage(lambda: work(payload), is_store_outage)
        await raw.ack()
    except PermanentError as exc:
        outcome = "dead_lettered"
        await dead_letter(bus, raw, spec, str(exc), "permanent")
        await raw.ack()
    except Exception as exc:
        if delivered >= spec.max_deliver:
            outcome = "dead_lettered"
            await dead_letter(bus, raw, spec, f"{type(exc).__name__}: {exc}", "max_deliver")
            await raw.ack()
        else:
            outcome = "retry"
            delay = nak_delay(spec, delivered)
            log.warning(
                "handler_failed_will_retry",
                error=f"{type(exc).__name__}: {exc}"[:300],
                delivered=delivered,
                retry_in=delay,
            )
            await raw.nak(delay=delay)
    finally:
        metrics.MESSAGES_HANDLED.labels(consumer=spec.durable, outcome=outcome).inc()
        metrics.HANDLER_SECONDS.labels(consumer=spec.durable).observe(time.perf_counter() - started)
        unbind_context("plan_id", "user_id")
        telemetry.leave_message(traced)
