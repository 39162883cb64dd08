"""GET /api/v1/plans/{id}/events: a plan's progress as Server-Sent Events (FastAPI's native
SSE), replayed from PLAN_EVENTS so late and reconnecting clients miss nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import nats.errors
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.deps import LastEventId, OwnedPlan, RuntimeDep
from tripmesh_gateway.api.errors import validation_problem
from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.events import already_finished, replay

log = get_logger(__name__)
router = APIRouter(prefix="/plans", tags=["events"])


async def resume_point(
    row: OwnedPlan,
    runtime: RuntimeDep,
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
    response starts so a bad value is a 422 and a finished stream a 204, not a broken stream."""
    raw = last_event_id if last_event_id is not None else last_event_id_query
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit():
        raise validation_problem([FieldError("Last-Event-ID", "must be an event id from this stream")])
    after = int(raw.strip())
    if await already_finished(runtime.bus.js, row.user_id, row.plan_id, after):
        raise HTTPException(status_code=status.HTTP_204_NO_CONTENT)
    return after


@router.get(
    "/{plan_id}/events",
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
    after: Annotated[int | None, Depends(resume_point)],
) -> AsyncIterator[ServerSentEvent]:
    settings = runtime.settings
    yield ServerSentEvent(comment="stream open", retry=settings.sse_retry_ms)
    try:
        async for item in replay(
            runtime.bus.js, row.user_id, row.plan_id, after, settings.sse_keepalive_seconds
        ):
            if item is None:
                yield ServerSentEvent(comment="keep-alive")
                continue
            yield ServerSentEvent(
                id=str(item.sequence), event=item.event.kind.value, raw_data=item.event.model_dump_json()
            )
    except (nats.errors.Error, TimeoutError) as exc:
        # The response has started: the status can no longer say 503. Tell the client in-band;
        # EventSource reconnects with Last-Event-ID and the replay resumes where it stopped.
        log.warning("sse_stream_interrupted", plan_id=row.plan_id, error=repr(exc)[:200])
        yield ServerSentEvent(
            event="error", data={"status": 503, "title": "event stream interrupted, reconnect"}
        )
