"""Consumer lag and DLQ depth as Prometheus gauges, refreshed from JetStream every few seconds.

Each service polls `js.consumer_info` for the durables it consumes, so the lag that scales a
pool (`runner-transport` pending) is on the /metrics of the replicas that serve it; all
replicas of a pool report the same numbers (take `max by (consumer)`). The DLQ depth is
exported by one service only (the planner, see deploy/observability/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from nats.js import JetStreamContext
from prometheus_client import Gauge
from tripmesh_contracts.streams import DLQ, ConsumerSpec

from tripmesh_kit.logging import get_logger
from tripmesh_kit.loops import pause

log = get_logger(__name__)

CONSUMER_PENDING = Gauge(
    "tripmesh_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "tripmesh_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not yet acknowledged",
    ["consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "tripmesh_consumer_redelivered_messages",
    "Messages of the durable consumer delivered more than once and not yet acknowledged",
    ["consumer"],
)
CONSUMER_POLL_ERRORS = Gauge(
    "tripmesh_consumer_info_failing",
    "1 while the last consumer_info of the durable failed (NATS down, consumer missing)",
    ["consumer"],
)
CONSUMER_INFO = Gauge(
    "tripmesh_consumer_info",
    "1 per durable consumer a service reads: its stream and subject filter (join on `consumer`"
    " to see the handled / dead-lettered counters by subject)",
    ["consumer", "stream", "filter_subject"],
)
DLQ_MESSAGES = Gauge("tripmesh_dlq_messages", "Messages in the DLQ stream (dead letters kept for operators)")

POLL_INTERVAL_SECONDS = 5.0


async def refresh_consumers(js: JetStreamContext, specs: Iterable[ConsumerSpec]) -> None:
    for spec in specs:
        try:
            info = await js.consumer_info(spec.stream, spec.durable, timeout=2)
        except Exception as exc:
            CONSUMER_POLL_ERRORS.labels(consumer=spec.durable).set(1)
            log.debug("consumer_info_failed", consumer=spec.durable, error=str(exc)[:200])
            continue
        CONSUMER_POLL_ERRORS.labels(consumer=spec.durable).set(0)
        CONSUMER_PENDING.labels(consumer=spec.durable).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(consumer=spec.durable).set(info.num_ack_pending or 0)
        CONSUMER_REDELIVERED.labels(consumer=spec.durable).set(info.num_redelivered or 0)


async def refresh_dlq(js: JetStreamContext) -> None:
    try:
        info = await js.stream_info(DLQ.name)
    except Exception as exc:
        log.debug("dlq_info_failed", error=str(exc)[:200])
        return
    DLQ_MESSAGES.set(info.state.messages)


async def poll_lag(
    get_js: Callable[[], JetStreamContext],
    specs: Iterable[ConsumerSpec],
    *,
    dlq: bool = False,
    every: float = POLL_INTERVAL_SECONDS,
) -> None:
    """Refresh the gauges until cancelled. `get_js` is called each round: the broker may
    connect after the task starts. Failures never end the loop (NATS may be restarting)."""
    specs = list(specs)
    for spec in specs:  # series exist from the first scrape, before the first poll answers
        CONSUMER_INFO.labels(spec.durable, spec.stream, spec.filter_subject).set(1)
        CONSUMER_PENDING.labels(consumer=spec.durable)
        CONSUMER_ACK_PENDING.labels(consumer=spec.durable)
    while True:
        try:
            js = get_js()
            await refresh_consumers(js, specs)
            if dlq:
                await refresh_dlq(js)
        except Exception as exc:  # not connected yet
            log.debug("lag_poll_failed", error=str(exc)[:200])
        await pause(every)


def start_lag_poller(
    get_js: Callable[[], JetStreamContext],
    specs: Iterable[ConsumerSpec],
    *,
    dlq: bool = False,
    every: float = POLL_INTERVAL_SECONDS,
) -> asyncio.Task[None]:
    return asyncio.create_task(poll_lag(get_js, specs, dlq=dlq, every=every), name="tripmesh-lag-poller")


async def stop_lag_poller(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
