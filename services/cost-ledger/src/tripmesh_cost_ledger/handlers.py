"""FastStream wiring of the `svc.ledger.*` responders (core NATS request/reply, queue group
`cost-ledger`). The usage consumer is `puller.UsagePuller`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import (
    AlertsReply,
    AlertsRequest,
    BudgetCheckReply,
    BudgetCheckRequest,
    BudgetGetRequest,
    BudgetSetRequest,
    BudgetView,
    CostSummaryReply,
    CostSummaryRequest,
    PlanCostsReply,
    PlanCostsRequest,
    ReserveReply,
    ReserveRequest,
    RpcError,
    RpcModel,
    RpcReply,
    SettleReply,
    SettleRequest,
)
from tripmesh_kit import pg
from tripmesh_kit.logging import get_logger

from tripmesh_cost_ledger.budget_queries import BudgetQueries
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


def responder(
    broker: NatsBroker,
    subject: str,
    request_model: type[Req],
    reply_model: type[Rep],
    work: Callable[[Req], Awaitable[Rep]],
) -> None:
    """One `svc.ledger.*` responder: decode, `work`, reply (errors as the reply's `error`)."""

    async def respond(msg: NatsMessage) -> dict[str, Any]:
        return await answer(msg.body, request_model, reply_model, work)

    respond.__name__ = respond.__qualname__ = "on_" + subject.removeprefix("svc.ledger.").replace(".", "_")
    broker.subscriber(subject, queue=QUEUE, max_workers=RPC_WORKERS)(respond)


def register_handlers(broker: NatsBroker, queries: LedgerQueries, budgets: BudgetQueries) -> None:
    async def budget_check(req: BudgetCheckRequest) -> BudgetCheckReply:
        await budgets.reservations.remember_tier(req.user_id, req.tier)
        return await queries.budget_check(req)

    responder(broker, subjects.SVC_LEDGER_SUMMARY, CostSummaryRequest, CostSummaryReply, queries.summary)
    responder(broker, subjects.SVC_LEDGER_PLAN_COSTS, PlanCostsRequest, PlanCostsReply, queries.plan_costs)
    responder(broker, subjects.SVC_LEDGER_BUDGET_CHECK, BudgetCheckRequest, BudgetCheckReply, budget_check)
    # The runner's hot path: one reserve and one settle per LLM call attempt.
    responder(broker, subjects.SVC_LEDGER_RESERVE, ReserveRequest, ReserveReply, budgets.reserve)
    responder(broker, subjects.SVC_LEDGER_SETTLE, SettleRequest, SettleReply, budgets.settle)
    responder(broker, subjects.SVC_LEDGER_BUDGET_GET, BudgetGetRequest, BudgetView, budgets.budget_get)
    responder(broker, subjects.SVC_LEDGER_BUDGET_SET, BudgetSetRequest, BudgetView, budgets.budget_set)
    responder(broker, subjects.SVC_LEDGER_ALERTS, AlertsRequest, AlertsReply, budgets.alerts_for)
