"""FastStream subscribers: thin adapters from bus messages to the planner's domain objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faststream.nats import NatsMessage
from pydantic import BaseModel, ValidationError
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.messages import AgentResult
from tripmesh_contracts.rpc import (
    PlanGetReply,
    PlanGetRequest,
    PlanListReply,
    PlanListRequest,
    PlanVersionReply,
    PlanVersionRequest,
    PlanVersionsReply,
    PlanVersionsRequest,
    RpcError,
    RpcReply,
)
from tripmesh_kit.consume import handle_message
from tripmesh_kit.logging import get_logger
from tripmesh_kit.pg import is_store_outage
from tripmesh_kit.subscribe import durable_subscriber

from tripmesh_planner.commands import CommandHead

if TYPE_CHECKING:
    from tripmesh_planner.app import PlannerService

log = get_logger(__name__)

Handler = Callable[[NatsMessage], Awaitable[None]]
Decorator = Callable[[Handler], Handler]


def register_handlers(svc: PlannerService) -> None:
    broker, settings = svc.broker, svc.settings

    commands_subscriber: Decorator = durable_subscriber(
        broker, streams.PLANNER_COMMANDS, max_workers=settings.command_workers
    )
    results_subscriber: Decorator = durable_subscriber(
        broker, streams.PLANNER_RESULTS, max_workers=settings.result_workers
    )

    @commands_subscriber
    async def on_command(msg: NatsMessage) -> None:
        await handle_message(
            msg.raw_message,
            CommandHead,
            lambda c: svc.running.commands.handle(c),
            spec=streams.PLANNER_COMMANDS,
            bus=svc.bus,
            is_store_outage=is_store_outage,
        )

    @results_subscriber
    async def on_result(msg: NatsMessage) -> None:
        await handle_message(
            msg.raw_message,
            AgentResult,
            lambda r: svc.running.results.handle(r),
            spec=streams.PLANNER_RESULTS,
            bus=svc.bus,
            is_store_outage=is_store_outage,
        )

    def rpc(
        subject: str,
        request: type[BaseModel],
        reply: type[RpcReply],
        answer: Callable[[Any], Awaitable[RpcReply]],
    ) -> None:
        @broker.subscriber(subject, queue="planner", max_workers=settings.rpc_workers)
        async def on_request(msg: NatsMessage) -> bytes:
            try:
                parsed = request.model_validate_json(msg.body)
            except ValidationError as exc:
                return reply(
                    error=RpcError(status=422, title="Invalid request", detail=str(exc)[:500])
                ).to_bytes()
            try:
                return (await answer(parsed)).to_bytes()
            except Exception as exc:  # the caller gets an answer, not a timeout
                log.warning("rpc_failed", subject=subject, error=f"{type(exc).__name__}: {exc}"[:300])
                return reply(error=RpcError(status=503, title="Planner unavailable")).to_bytes()

    rpc(subjects.SVC_PLANNER_GET, PlanGetRequest, PlanGetReply, lambda r: svc.reads.get(r))
    rpc(subjects.SVC_PLANNER_LIST, PlanListRequest, PlanListReply, lambda r: svc.reads.list(r))
    rpc(
        subjects.SVC_PLANNER_VERSIONS, PlanVersionsRequest, PlanVersionsReply, lambda r: svc.reads.versions(r)
    )
    rpc(subjects.SVC_PLANNER_VERSION, PlanVersionRequest, PlanVersionReply, lambda r: svc.reads.version(r))
