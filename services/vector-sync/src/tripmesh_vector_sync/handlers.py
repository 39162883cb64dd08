"""FastStream wiring: the consumer of `plans.changed.>` and the `svc.vectors.*` responders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import PlanChanged
from tripmesh_contracts.rpc import (
    RpcError,
    RpcModel,
    RpcReply,
    SearchPlansRequest,
    SearchReply,
    SimilarPlansRequest,
)
from tripmesh_contracts.streams import VECTOR_SYNC_CHANGES
from tripmesh_kit.bus import Bus
from tripmesh_kit.consume import handle_message
from tripmesh_kit.logging import get_logger
from tripmesh_kit.subscribe import durable_subscriber

from tripmesh_vector_sync import metrics
from tripmesh_vector_sync.search import SearchService
from tripmesh_vector_sync.store import is_qdrant_outage
from tripmesh_vector_sync.sync import PlanSync

log = get_logger(__name__)

QUEUE = "vector-sync"

Req = TypeVar("Req", bound=RpcModel)
Rep = TypeVar("Rep", bound=RpcReply)


async def answer(
    body: bytes,
    request_model: type[Req],
    reply_model: type[Rep],
    work: Callable[[Req], Awaitable[Rep]],
    kind: str,
) -> dict[str, Any]:
    """Run one request; a failure becomes the reply's `error`, never a silent timeout."""
    error: RpcError
    try:
        request = request_model.model_validate_json(body)
    except ValidationError as exc:
        error = RpcError(status=422, title="Invalid request", detail=str(exc)[:1000])
    else:
        try:
            return (await work(request)).model_dump(mode="json")
        except Exception as exc:
            log.exception("rpc_failed", request=request_model.__name__)
            error = RpcError(status=503, title="Vector search unavailable", detail=type(exc).__name__)
    metrics.SEARCHES.labels(kind=kind, outcome=f"error_{error.status}").inc()
    return reply_model(error=error).model_dump(mode="json")


def register_handlers(
    broker: NatsBroker,
    bus: Bus,
    sync: PlanSync,
    search: SearchService,
    *,
    fetch_timeout_seconds: float,
    rpc_workers: int,
) -> None:
    # One message per pull, handled one at a time: what makes the version read-then-write
    # safe inside a replica (sync.py), and the path that loses nothing. FastStream's batch
    # mode is deliberately not used: with nats-py 2.16 a partly filled batch is dropped when
    # the window's last fetch ends in a bare asyncio.TimeoutError (FastStream 0.7.8 only
    # catches nats' subclass), and the dropped messages wait for AckWait (30 s) to come back.
    change_subscriber: Callable[[Callable[..., Awaitable[None]]], object] = durable_subscriber(
        broker,
        VECTOR_SYNC_CHANGES,
        batch=False,
        batch_size=1,
        fetch_timeout=fetch_timeout_seconds,
    )

    async def apply(change: PlanChanged) -> None:
        await sync.apply(change)

    @change_subscriber
    async def on_change(msg: NatsMessage) -> None:
        await handle_message(
            msg.raw_message,
            PlanChanged,
            apply,
            spec=VECTOR_SYNC_CHANGES,
            bus=bus,
            is_store_outage=is_qdrant_outage,
        )

    @broker.subscriber(subjects.SVC_VECTORS_SIMILAR, queue=QUEUE, max_workers=rpc_workers)
    async def on_similar(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, SimilarPlansRequest, SearchReply, search.similar, "similar")

    @broker.subscriber(subjects.SVC_VECTORS_SEARCH, queue=QUEUE, max_workers=rpc_workers)
    async def on_search(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, SearchPlansRequest, SearchReply, search.search, "search")
