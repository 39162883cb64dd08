"""Server-Sent Events (FastAPI's native SSE), replayed from PLAN_EVENTS so late and
reconnecting clients miss nothing: a plan's progress (`GET /plans/{id}/events`) and the
caller's account events, cost alerts (`GET /events`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Annotated, Any, TypeVar

import nats.errors
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import CurrentUser, LastEventId, OwnedPlan, RuntimeDep
from tripmesh_gateway.api.errors import validation_problem
from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.events import Replayed, UserEvent, already_finished, replay, user_events
from tripmesh_gateway.settings import Settings

log = get_logger(__name__)
router = APIRouter(tags=["events"])

Item = TypeVar("Item")


async def last_event_id(
    last_event_id: LastEventId = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=64,
            description="Same as the Last-Event-ID header, for clients that cannot set it",
        ),
    ] = None,
) -> int | None:
    """The stream sequence to resume after (header wins over query), checked before the
    response starts so a bad value is a 422, not a broken stream."""
    raw = last_event_id if last_event_id is not None else last_event_id_query
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit():
        raise validation_problem([FieldError("Last-Event-ID", "must be an event id from this stream")])
    return int(raw.strip())


ResumeAfter = Annotated[int | None, Depends(last_event_id)]


async def plan_resume_point(row: OwnedPlan, runtime: RuntimeDep, after: ResumeAfter) -> int | None:
    """Also a 204 for a client resuming after the plan's final event: nothing more will come."""
    if after is not None and await already_finished(runtime.bus.js, row.user_id, row.plan_id, after):
        raise HTTPException(status_code=status.HTTP_204_NO_CONTENT)
    return after


async def sse(
    settings: Settings,
    items: AsyncGenerator[Item | None, None],
    to_event: Callable[[Item], ServerSentEvent],
    **log_fields: Any,
) -> AsyncIterator[ServerSentEvent]:
    """The SSE framing shared by every stream: the `retry:` hint first, keep-alive comments
    while idle, and an in-band error when the bus fails mid-stream."""
    yield ServerSentEvent(comment="stream open", retry=settings.sse_retry_ms)
    try:
        async with aclosing(items):
            async for item in items:
                yield ServerSentEvent(comment="keep-alive") if item is None else to_event(item)
    except (nats.errors.Error, TimeoutError) as exc:
        # The response has started: the status can no longer say 503. Tell the client in-band;
        # EventSource reconnects with Last-Event-ID and the replay resumes where it stopped.
        log.warning("sse_stream_interrupted", error=repr(exc)[:200], **log_fields)
        yield ServerSentEvent(
            event="error", data={"status": 503, "title": "event stream interrupted, reconnect"}
        )


def plan_event_sse(item: Replayed) -> ServerSentEvent:
    event = item.event
    return ServerSentEvent(id=str(item.sequence), event=event.kind.value, raw_data=event.model_dump_json())


def user_event_sse(item: UserEvent) -> ServerSentEvent:
    return ServerSentEvent(id=str(item.sequence), event=item.kind, raw_data=item.data)


@router.get(
    "/plans/{plan_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "`id:` stream sequence, `event:` kind, `data:` PlanEvent JSON"},
        204: {"description": "Resumed after the plan's final event: nothing more will come"},
        401: {"description": "Missing or invalid bearer token"},
        404: {"description": "No such plan among yours"},
    },
)
async def plan_events(
    row: OwnedPlan,
    runtime: RuntimeDep,
    after: Annotated[int | None, Depends(plan_resume_point)],
) -> AsyncIterator[ServerSentEvent]:
    settings = runtime.settings
    events = replay(runtime.bus.js, row.user_id, row.plan_id, after, settings.sse_keepalive_seconds)
    async for message in sse(settings, events, plan_event_sse, plan_id=row.plan_id):
        yield message


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Your account's events, never ending: `id:` stream sequence, "
            "`event:` kind (`cost_alert`), `data:` its JSON (CostAlert)"
        },
        401: {"description": "Missing or invalid bearer token"},
    },
)
async def account_events(
    user: CurrentUser, runtime: RuntimeDep, after: ResumeAfter
) -> AsyncIterator[ServerSentEvent]:
    """Account-level events (`users.evt.<you>.>`): cost alerts as the ledger raises them,
    replayed from the start (7 days are kept) or after `Last-Event-ID`."""
    settings = runtime.settings
    events = user_events(runtime.bus.js, user.id, after, settings.sse_keepalive_seconds)
    async for message in sse(settings, events, user_event_sse, user_id=user.id):
        yield message
