"""Replaying one plan's events from PLAN_EVENTS for Server-Sent Events.

Each SSE connection gets its own ordered (ephemeral, in-memory, no-ack) JetStream consumer
filtered on `plans.evt.<user>.<plan>.>`, starting at the first message or right after the
client's Last-Event-ID (the stream sequence). A client that connects late or reconnects
therefore misses nothing. The stream ends after a terminal event that is the plan's latest
(a revision after `completed` keeps a replay going until its own terminal event).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from prometheus_client import Gauge
from pydantic import ValidationError
from tripmesh_contracts import EventKind, PlanEvent, streams, subjects
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

SSE_STREAMS = Gauge("tripmesh_gateway_sse_streams", "Open SSE progress streams")
CONSUMER_INACTIVE_SECONDS = 30.0
"""The server drops a consumer whose gateway died without cleaning up after this long."""


@dataclass(frozen=True)
class Replayed:
    sequence: int
    event: PlanEvent
    last: bool
    """A terminal event with nothing after it: the stream ends here."""


async def already_finished(js: JetStreamContext, user_id: str, plan_id: str, last_seen: int) -> bool:
    """True when `last_seen` is this plan's terminal event and nothing followed it - a client
    reconnecting after the end, which gets 204 (EventSource stops reconnecting on 204)."""
    if last_seen <= 0:
        return False
    try:
        seen = await js.get_msg(streams.PLAN_EVENTS.name, seq=last_seen)
    except NotFoundError:
        return False
    try:
        owner, plan, kind = subjects.parse_plan_event(seen.subject or "")
    except ValueError:
        return False
    if (owner, plan) != (user_id, plan_id) or not EventKind(kind).terminal:
        return False
    try:
        await js.get_msg(
            streams.PLAN_EVENTS.name,
            seq=last_seen + 1,
            next=True,
            subject=subjects.plan_events_filter(user_id, plan_id),
        )
    except NotFoundError:
        return True
    return False


async def replay(
    js: JetStreamContext, user_id: str, plan_id: str, after: int | None, idle_timeout: float
) -> AsyncIterator[Replayed | None]:
    """Yield the plan's events from `after + 1` (or the start); None after `idle_timeout`
    seconds without one (the caller sends a keep-alive). Stops after the last terminal one."""
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL if not after else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after + 1 if after else None,
        inactive_threshold=CONSUMER_INACTIVE_SECONDS,
    )
    sub = await js.subscribe(
        subjects.plan_events_filter(user_id, plan_id),
        stream=streams.PLAN_EVENTS.name,
        ordered_consumer=True,
        config=config,
    )
    SSE_STREAMS.inc()
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_timeout)
            except nats.errors.TimeoutError:
                yield None
                continue
            meta = msg.metadata
            try:
                event = PlanEvent.from_bytes(msg.data)
            except ValidationError:
                log.warning("plan_event_undecodable", plan_id=plan_id, seq=meta.sequence.stream)
                continue
            last = event.kind.terminal and meta.num_pending == 0
            yield Replayed(sequence=meta.sequence.stream, event=event, last=last)
            if last:
                return
    finally:
        SSE_STREAMS.dec()
        # The client may be gone and this task cancelled: cleanup must still reach the server.
        with anyio.CancelScope(shield=True):
            await _close(js, sub)


async def _close(js: JetStreamContext, sub: JetStreamContext.PushSubscription) -> None:
    consumer = sub._consumer  # the current name (an ordered consumer renames itself on reset)
    try:
        await sub.unsubscribe()
    except (nats.errors.Error, ValueError) as exc:
        log.debug("sse_unsubscribe_failed", error=repr(exc))
    try:
        with anyio.move_on_after(5):
            await js.delete_consumer(streams.PLAN_EVENTS.name, consumer)
    except (NotFoundError, nats.errors.Error) as exc:
        log.debug("sse_consumer_delete_failed", error=repr(exc))
