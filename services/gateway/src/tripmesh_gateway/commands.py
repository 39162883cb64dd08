"""Accepting plans and sending plan commands: nothing accepted is ever lost.

A create first inserts the ownership row (with the exact PlanCreate it will publish), then
publishes with a message id derived from the plan id. If the publish fails the client gets
503 and the row stays unpublished: a retry with the same Idempotency-Key re-publishes the
same bytes under the same Nats-Msg-Id, so JetStream stores the command at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nats.errors
from faststream.exceptions import FastStreamException
from tripmesh_contracts import Envelope, PlanCreate, PlanRequest, new_id, subjects
from tripmesh_contracts.rpc import BudgetCheckReply, BudgetCheckRequest
from tripmesh_kit import metrics as kit_metrics
from tripmesh_kit.logging import get_logger

from tripmesh_gateway.api.errors import ApiProblem
from tripmesh_gateway.domain import create_message_id, request_hash
from tripmesh_gateway.rpc import ServiceError, ServiceUnavailable
from tripmesh_gateway.runtime import Runtime
from tripmesh_gateway.store import PlanIndexRow, UserRecord

log = get_logger(__name__)

PUBLISH_ERRORS = (nats.errors.Error, FastStreamException, OSError, TimeoutError)
"""What a publish raises when the bus will not take the message (after the kit's retries)."""


@dataclass(frozen=True)
class Acceptance:
    row: PlanIndexRow
    replayed: bool
    """True when an earlier request with the same Idempotency-Key created the plan."""


def publish_failed(exc: BaseException, plan_id: str | None = None) -> ApiProblem:
    extra: dict[str, Any] = {"plan_id": plan_id} if plan_id else {}
    return ApiProblem(
        503,
        "Service Unavailable",
        "the plan command could not be queued; retry later "
        "(with the same Idempotency-Key to get the same plan)",
        kind="bus-unavailable",
        headers={"Retry-After": "2"},
        cause=type(exc).__name__,
        **extra,
    )


async def check_budget(runtime: Runtime, user: UserRecord) -> None:
    """402 when the ledger says the user's LLM spend cap is reached.

    Fails open when the ledger does not answer: the runner reserves every LLM call against
    the same cap in the ledger, so an unchecked plan still cannot overspend."""
    if not runtime.settings.budget_check_enabled:
        return
    try:
        reply = await runtime.rpc.call(
            subjects.SVC_LEDGER_BUDGET_CHECK,
            BudgetCheckRequest(user_id=user.id, tier=user.subscription_tier),
            BudgetCheckReply,
            timeout=runtime.settings.budget_check_timeout_seconds,
        )
    except (ServiceUnavailable, ServiceError) as exc:
        log.warning("budget_check_skipped", user_id=user.id, reason=str(exc))
        return
    if not reply.allowed:
        kit_metrics.BUDGET_REFUSALS.labels(where="gateway").inc()
        raise ApiProblem(
            402,
            "Payment Required",
            reply.reason or "your LLM spend cap is reached",
            kind="budget-exceeded",
            daily_spent_usd=float(reply.daily_spent_usd),
            daily_cap_usd=None if reply.daily_cap_usd is None else float(reply.daily_cap_usd),
            monthly_spent_usd=float(reply.monthly_spent_usd),
            monthly_cap_usd=None if reply.monthly_cap_usd is None else float(reply.monthly_cap_usd),
        )


def _replay(row: PlanIndexRow, body_hash: str) -> None:
    if row.request_hash != body_hash:
        raise ApiProblem(
            422,
            "Unprocessable Content",
            "this Idempotency-Key was already used with a different request body",
            kind="idempotency-key-reused",
            plan_id=row.plan_id,
        )
    if row.deleted_at is not None:
        raise ApiProblem(
            409,
            "Conflict",
            "the plan created with this Idempotency-Key was deleted",
            kind="idempotency-key-deleted-plan",
        )


async def accept_plan(
    runtime: Runtime,
    user: UserRecord,
    body: dict[str, Any],
    request: PlanRequest,
    *,
    idempotency_key: str | None,
    plan_budget_usd: Any = None,
) -> Acceptance:
    body_hash = request_hash(body)
    store = runtime.store
    if idempotency_key is not None:
        existing = await store.plan_by_idempotency_key(user.id, idempotency_key)
        if existing is not None:
            _replay(existing, body_hash)
            return await _ensure_published(runtime, existing, replayed=True)
    await check_budget(runtime, user)
    plan_id = new_id()
    command = PlanCreate(
        id=create_message_id(plan_id),
        user_id=user.id,
        plan_id=plan_id,
        correlation_id=plan_id,
        request=request,
        plan_budget_usd=plan_budget_usd,
    )
    row, created = await store.insert_plan(
        plan_id=plan_id,
        user_id=user.id,
        idempotency_key=idempotency_key,
        request_hash=body_hash,
        request=request.model_dump(mode="json"),
        command=command.model_dump_json(),
        title=request.title,
    )
    if not created:  # a concurrent request with the same key won the insert
        _replay(row, body_hash)
    return await _ensure_published(runtime, row, replayed=not created)


async def _ensure_published(runtime: Runtime, row: PlanIndexRow, *, replayed: bool) -> Acceptance:
    if row.published_at is None:
        try:
            await runtime.bus.publish_raw(
                row.command.encode(), subjects.PLAN_CMD_CREATE, msg_id=create_message_id(row.plan_id)
            )
        except PUBLISH_ERRORS as exc:
            log.warning("plan_create_publish_failed", plan_id=row.plan_id, error=repr(exc)[:300])
            await runtime.store.mark_publish_failed(row.plan_id, repr(exc))
            raise publish_failed(exc, row.plan_id) from exc
        await runtime.store.mark_published(row.plan_id)
        refreshed = await runtime.store.owned_plan(row.user_id, row.plan_id)
        row = refreshed or row
    log.info("plan_accepted", plan_id=row.plan_id, user_id=row.user_id, replayed=replayed)
    return Acceptance(row=row, replayed=replayed)


async def send_command(runtime: Runtime, command: Envelope, subject: str) -> None:
    """Publish a revise/cancel/decide/delete command, 503 when the bus will not take it."""
    try:
        await runtime.bus.publish(command, subject)
    except PUBLISH_ERRORS as exc:
        log.warning(
            "plan_command_publish_failed", subject=subject, plan_id=command.plan_id, error=repr(exc)[:300]
        )
        raise publish_failed(exc) from exc
