"""Request/reply calls to svc.planner.*, svc.ledger.* and svc.vectors.* (core NATS)."""

from __future__ import annotations

from typing import Any, TypeVar

import nats.errors
from faststream.nats import NatsBroker
from prometheus_client import Counter
from pydantic import ValidationError
from tripmesh_contracts.rpc import RpcError, RpcModel, RpcReply
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

ReplyT = TypeVar("ReplyT", bound=RpcReply)

RPC_CALLS = Counter(
    "tripmesh_gateway_rpc_calls_total",
    "svc.* requests made by the gateway, by outcome",
    ["subject", "outcome"],
)


class ServiceUnavailable(Exception):
    """The service did not answer (no responders, timeout, broker down) or answered garbage."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason


class ServiceError(Exception):
    """The service answered with an error (its RpcError has an HTTP-like status)."""

    def __init__(self, subject: str, error: RpcError) -> None:
        super().__init__(f"{subject}: {error.status} {error.title}")
        self.subject = subject
        self.error = error


class RpcClient:
    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout

    async def call(
        self, subject: str, request: RpcModel, reply_type: type[ReplyT], *, timeout: float | None = None
    ) -> ReplyT:
        """The reply, or ServiceUnavailable / ServiceError. Never returns an error reply."""
        reply = await self.call_raw(subject, request, reply_type, timeout=timeout)
        if reply.error is not None:
            RPC_CALLS.labels(subject, f"error_{reply.error.status}").inc()
            raise ServiceError(subject, reply.error)
        RPC_CALLS.labels(subject, "ok").inc()
        return reply

    async def call_raw(
        self, subject: str, request: RpcModel, reply_type: type[ReplyT], *, timeout: float | None = None
    ) -> ReplyT:
        try:
            message = await self.broker.request(request.to_bytes(), subject, timeout=timeout or self.timeout)
        except nats.errors.NoRespondersError as exc:
            raise self._unavailable(subject, "no_responders", exc) from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise self._unavailable(subject, "timeout", exc) from exc
        except nats.errors.Error as exc:
            raise self._unavailable(subject, "broker_error", exc) from exc
        body: Any = message.body
        try:
            return reply_type.model_validate_json(body)
        except ValidationError as exc:
            raise self._unavailable(subject, "bad_reply", exc) from exc

    def _unavailable(self, subject: str, outcome: str, exc: BaseException) -> ServiceUnavailable:
        RPC_CALLS.labels(subject, outcome).inc()
        log.warning("rpc_unavailable", subject=subject, outcome=outcome, error=repr(exc)[:200])
        return ServiceUnavailable(subject, outcome)
