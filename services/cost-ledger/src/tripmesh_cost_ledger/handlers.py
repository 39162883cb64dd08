"""FastStream wiring of the `svc.ledger.*` responders (core NATS request/reply, queue group
`cost-ledger`). The usage consumer is `puller.UsagePuller`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import (
    BudgetCheckReply,
    BudgetCheckRequest,
    CostSummaryReply,
    CostSummaryRequest,
    PlanCostsReply,
    PlanCostsRequest,
    RpcError,
    RpcModel,
    RpcReply,
)
from tripmesh_kit import pg
from tripmesh_kit.logging import get_logger

from tripmesh_cost_ledger.queries import LedgerQueries

log = get_logger(__name__)

QUEUE = "cost-ledger"
RPC_WORKERS = 8

Req = TypeVar("Req", bound=RpcModel)
Rep = TypeVar("Rep", bound=RpcReply)


async def answer(
    body: bytes, request_model: type[Req], reply_model: type[Rep], work: Callable[[Req], Awaitable[Rep]]
) -> dict[str, Any]:
    """Run one request; failures become the reply's `error` (HTTP-like status), never a
    silent timeout for the caller."""
    error: RpcError
    try:
        request = request_model.model_validate_json(body)
    except ValidationError as exc:
        error = RpcError(status=422, title="Invalid request", detail=str(exc)[:1000])
    else:
        try:
            return (await work(request)).model_dump(mode="json")
        except ValueError as exc:
            error = RpcError(status=422, title="Invalid request", detail=str(exc)[:1000])
        except Exception as exc:
            if pg.is_store_outage(exc):
                error = RpcError(status=503, title="Ledger store unavailable", detail=type(exc).__name__)
            else:
                log.exception("rpc_failed", request=request_model.__name__)
                error = RpcError(status=500, title="Ledger error", detail=type(exc).__name__)
    return reply_model(error=error).model_dump(mode="json")


def register_handlers(broker: NatsBroker, queries: LedgerQueries) -> None:
    @broker.subscriber(subjects.SVC_LEDGER_SUMMARY, queue=QUEUE, max_workers=RPC_WORKERS)
    async def on_summary(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, CostSummaryRequest, CostSummaryReply, queries.summary)

    @broker.subscriber(subjects.SVC_LEDGER_PLAN_COSTS, queue=QUEUE, max_workers=RPC_WORKERS)
    async def on_plan_costs(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, PlanCostsRequest, PlanCostsReply, queries.plan_costs)

    @broker.subscriber(subjects.SVC_LEDGER_BUDGET_CHECK, queue=QUEUE, max_workers=RPC_WORKERS)
    async def on_budget_check(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, BudgetCheckRequest, BudgetCheckReply, queries.budget_check)
