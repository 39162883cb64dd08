"""FastStream wiring: the batch consumer of `plans.changed.>` and the `svc.vectors.*` responders."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from faststream import Context, StreamMessage
from faststream.nats import NatsBroker, NatsMessage
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg
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
from tripmesh_vector_sync.sync import PlanSync, Vectors

log = get_logger(__name__)

QUEUE = "vector-sync"

Req = TypeVar("Req", bound=RpcModel)
Rep = TypeVar("Rep", bound=RpcReply)


async def answer(body: bytes, request_model: type[Req], reply_model: type[Rep],
                 work: Callable[[Req], Awaitable[Rep]], kind: str) -> dict[str, Any]:
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
            error = RpcError(status=503, title="Vector search unavailable",
                             detail=type(exc).__name__)
    metrics.SEARCHES.labels(kind=kind, outcome=f"error_{error.status}").inc()
    return reply_model(error=error).model_dump(mode="json")


async def keep_raw_bodies(msg: StreamMessage[Any]) -> Any:
    # FastStream's default decoder JSON-parses every body of a batch before the handler runs
    # and would fail the whole batch on one bad body; decoding (and the DLQ) is ours.
    return msg.body


async def handle_batch(raws: list[Msg], sync: PlanSync, bus: Bus) -> None:
    """Embed the batch's texts in one call, then apply (and ack) each message in order."""
    decoded: list[PlanChanged] = []
    for raw in raws:
        with contextlib.suppress(ValidationError):
            decoded.append(PlanChanged.model_validate_json(raw.data))
    vectors: Vectors = {}
    try:
        vectors = await sync.prepare(decoded)
    except Exception as exc:
        # each message embeds its own texts below and gets its own retry / DLQ outcome
        log.warning("batch_prepare_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def apply(change: PlanChanged) -> None:
        await sync.apply(change, vectors)

    for raw in raws:
        await handle_message(raw, PlanChanged, apply, spec=VECTOR_SYNC_CHANGES, bus=bus,
                             is_store_outage=is_qdrant_outage)


def register_handlers(broker: NatsBroker, bus: Bus, sync: PlanSync, search: SearchService, *,
                      batch_size: int, batch_window_seconds: float, rpc_workers: int) -> None:
    # one worker: messages are applied one at a time, which is what makes the version
    # read-then-write safe inside a replica (see sync.py)
    batch_subscriber: Callable[[Callable[..., Awaitable[None]]], object] = durable_subscriber(
        broker, VECTOR_SYNC_CHANGES, batch=True, batch_size=batch_size,
        fetch_timeout=batch_window_seconds, decoder=keep_raw_bodies,
    )

    @batch_subscriber
    async def on_changes(msg: Annotated[NatsBatchMessage, Context("message")]) -> None:
        await handle_batch(list(msg.raw_message), sync, bus)

    @broker.subscriber(subjects.SVC_VECTORS_SIMILAR, queue=QUEUE, max_workers=rpc_workers)
    async def on_similar(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, SimilarPlansRequest, SearchReply, search.similar, "similar")

    @broker.subscriber(subjects.SVC_VECTORS_SEARCH, queue=QUEUE, max_workers=rpc_workers)
    async def on_search(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, SearchPlansRequest, SearchReply, search.search, "search")
