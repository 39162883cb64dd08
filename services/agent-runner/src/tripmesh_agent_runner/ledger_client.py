"""The runner's side of `svc.ledger.reserve` / `svc.ledger.settle` (core NATS request/reply).

A small adapter of its own (services never import each other; the gateway's RpcClient is the
same idea). Every way the ledger can fail to *decide* - no responders, a timeout, a broken
connection, an unreadable reply, an error reply - becomes `LedgerUnavailable`: an
infrastructure failure, never a budget decision.

Retry owner, one per hop:
- reserve: this client, with stamina, inside a short budget (`attempts` tries of `timeout`
  seconds each) - the same `reservation_id` on every try, so a reply lost on the way back is
  answered again with the first decision. Past that budget the Reserver (budget.py) asks
  again, same id, while the ledger cannot decide, up to AGENT_RUNNER_LEDGER_OUTAGE_WAIT_SECONDS
  with the job held; past that the job's handler naks the job and JetStream redelivers it
  later (its nak delays): the next hop up, with its own owner.
- settle: this client, same short budget; past it the caller logs and gives up (see usage.py
  for why that is safe).
"""

from __future__ import annotations

from typing import Any, TypeVar

import nats.errors
import stamina
from faststream.nats import NatsBroker
from prometheus_client import Counter
from pydantic import ValidationError
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import (
    ReserveReply,
    ReserveRequest,
    RpcModel,
    RpcReply,
    SettleReply,
    SettleRequest,
)
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

ReplyT = TypeVar("ReplyT", bound=RpcReply)

LEDGER_RPC_CALLS = Counter(
    "tripmesh_runner_ledger_rpc_calls",
    "svc.ledger.* requests made by the agent-runner, by outcome (ok, no_responders, timeout,"
    " broker_error, bad_reply, error_<status>)",
    ["subject", "outcome"],
)

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
"""Error replies worth asking again within the short budget (the ledger's store hiccuped).
Any other error reply (422: our request is wrong) is not retried here; it still fails the
job's delivery, never the agent."""


class LedgerUnavailable(Exception):
    """The ledger could not decide (unreachable, timed out, answered an error or garbage)."""

    def __init__(self, subject: str, reason: str, *, retryable: bool = True) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason
        self.retryable = retryable


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, LedgerUnavailable) and exc.retryable


class LedgerClient:
    def __init__(
        self,
        broker: NatsBroker,
        *,
        timeout: float = 2.0,
        attempts: int = 3,
        wait_initial: float = 0.2,
        wait_max: float = 1.0,
    ) -> None:
        self.broker = broker
        self.timeout = timeout
        self.attempts = attempts
        self.wait_initial = wait_initial
        self.wait_max = wait_max

    async def reserve(self, request: ReserveRequest) -> ReserveReply:
        """The ledger's decision (granted or not, with its reason); LedgerUnavailable else."""
        return await self._call(subjects.SVC_LEDGER_RESERVE, request, ReserveReply)

    async def settle(self, request: SettleRequest, *, attempts: int | None = None) -> SettleReply:
        return await self._call(subjects.SVC_LEDGER_SETTLE, request, SettleReply, attempts)

    async def _call(
        self, subject: str, request: RpcModel, reply_type: type[ReplyT], attempts: int | None = None
    ) -> ReplyT:
        async for attempt in stamina.retry_context(
            on=_retryable,
            attempts=attempts or self.attempts,
            timeout=None,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.wait_initial,
        ):
            with attempt:
                return await self._once(subject, request, reply_type)
        raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover

    async def _once(self, subject: str, request: RpcModel, reply_type: type[ReplyT]) -> ReplyT:
        try:
            message = await self.broker.request(request.to_bytes(), subject, timeout=self.timeout)
        except nats.errors.NoRespondersError as exc:
            raise self._unavailable(subject, "no_responders", exc) from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise self._unavailable(subject, "timeout", exc) from exc
        except nats.errors.Error as exc:
            raise self._unavailable(subject, "broker_error", exc) from exc
        body: Any = message.body
        try:
            reply = reply_type.model_validate_json(body)
        except ValidationError as exc:
            raise self._unavailable(subject, "bad_reply", exc) from exc
        if reply.error is not None:
            status = reply.error.status
            LEDGER_RPC_CALLS.labels(subject, f"error_{status}").inc()
            log.warning("ledger_error_reply", subject=subject, status=status, title=reply.error.title)
            raise LedgerUnavailable(
                subject,
                f"{status} {reply.error.title}: {reply.error.detail or ''}".strip(),
                retryable=status in RETRYABLE_STATUSES,
            )
        LEDGER_RPC_CALLS.labels(subject, "ok").inc()
        return reply

    def _unavailable(self, subject: str, outcome: str, exc: BaseException) -> LedgerUnavailable:
        LEDGER_RPC_CALLS.labels(subject, outcome).inc()
        log.warning("ledger_unavailable", subject=subject, outcome=outcome, error=repr(exc)[:200])
        return LedgerUnavailable(subject, outcome)
