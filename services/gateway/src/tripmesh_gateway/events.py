"""Replaying events from PLAN_EVENTS for Server-Sent Events: one plan's progress
(`plans.evt.<user>.<plan>.>`) and one user's account events (`users.evt.<user>.>`, cost alerts).

Each SSE connection gets its own ordered (ephemeral, in-memory, no-ack) JetStream consumer
filtered on its subjects, starting at the first message or right after the client's
Last-Event-ID (the stream sequence). A client that connects late or reconnects therefore
misses nothing. A plan's stream ends after a terminal event that is the plan's latest (a
revision after `completed` keeps a replay going until its own terminal event); a user's
stream never ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from prometheus_client import Gauge
from pydantic import ValidationError
from tripmesh_contracts import EventKind, PlanEvent, streams, subjects
from tripmesh_contracts.ids import check_token
from tripmesh_contracts.messages import CostAlert
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

SSE_STREAMS = Gauge("tripmesh_gateway_sse_streams", "Open SSE progress streams")
CONSUMER_INACTIVE_SECONDS = 30.0
"""The server drops a consumer whose gateway died without cleaning up after this long."""


@dataclass(frozen=True)
class StreamMessage:
    sequence: int
    subject: str
    data: bytes
    pending: int
    """Messages on the filter after this one, when it was delivered."""


@dataclass(frozen=True)
class Replayed:
    sequence: int
    event: PlanEvent
    last: bool
    """A terminal event with nothing after it: the stream ends here."""


@dataclass(frozen=True)
class UserEvent:
    sequence: int
    kind: str
    """The subject's last token: `cost_alert`."""
    data: str
    """The message's JSON (a CostAlert for cost_alert)."""


def user_events_filter(user_id: str) -> str:
    # tripmesh_contracts.subjects has user_event(user, kind) but no filter over every kind.
    return f"users.evt.{check_token(user_id)}.>"


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
) -> AsyncGenerator[Replayed | None, None]:
    """Yield the plan's events from `after + 1` (or the start); None after `idle_timeout`
    seconds without one (the caller sends a keep-alive). Stops after the last terminal one."""
    filter_subject = subjects.plan_events_filter(user_id, plan_id)
    async with aclosing(follow(js, filter_subject, after, idle_timeout)) as messages:
        async for msg in messages:
            if msg is None:
                yield None
                continue
            try:
                event = PlanEvent.from_bytes(msg.data)
            except ValidationError:
                log.warning("plan_event_undecodable", plan_id=plan_id, seq=msg.sequence)
                continue
            last = event.kind.terminal and msg.pending == 0
            yield Replayed(sequence=msg.sequence, event=event, last=last)
            if last:
                return


async def user_events(
    js: JetStreamContext, user_id: str, after: int | None, idle_timeout: float
) -> AsyncGenerator[UserEvent | None, None]:
    """Yield the user's account events from `after + 1` (or the start), then live ones; None
    after `idle_timeout` seconds without one. Never ends by itself."""
    async with aclosing(follow(js, user_events_filter(user_id), after, idle_timeout)) as messages:
        async for msg in messages:
            if msg is None:
                yield None
                continue
            kind = msg.subject.rsplit(".", 1)[-1]
            data = _user_event_json(kind, msg.data)
            if data is None:
                log.warning("user_event_undecodable", user_id=user_id, kind=kind, seq=msg.sequence)
                continue
            yield UserEvent(sequence=msg.sequence, kind=kind, data=data)


def _user_event_json(kind: str, raw: bytes) -> str | None:
    """The event's JSON as clients get it: checked against its contract when there is one
    (cost_alert), else any JSON object; None when it is neither."""
    try:
        if kind == subjects.COST_ALERT_KIND:
            return CostAlert.from_bytes(raw).model_dump_json()
        if isinstance(json.loads(raw), dict):
            return raw.decode()
    except (ValidationError, ValueError):
        pass
    return None


async def follow(
    js: JetStreamContext, filter_subject: str, after: int | None, idle_timeout: float
) -> AsyncGenerator[StreamMessage | None, None]:
    """PLAN_EVENTS messages on `filter_subject` from `after + 1` (or the first), then live
    ones; None after `idle_timeout` seconds without one. The consumer goes when this does."""
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL if not after else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after + 1 if after else None,
        inactive_threshold=CONSUMER_INACTIVE_SECONDS,
    )
    sub = await js.subscribe(
        filter_subject, stream=streams.PLAN_EVENTS.name, ordered_consumer=True, config=config
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
            yield StreamMessage(
                sequence=meta.sequence.stream, subject=msg.subject, data=msg.data, pending=meta.num_pending
            )
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
