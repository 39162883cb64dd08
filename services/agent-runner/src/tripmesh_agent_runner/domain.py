"""Pure decisions of the runner: message ids, expiry, and the contract messages it publishes.

Message ids (why they are built the way they are):

- The result of a job has id `stable_id(job.id, "result")`. A job redelivered after a crash
  (or after an ack that got lost) runs again and publishes its result again with the *same*
  id, so JetStream's duplicate window drops the copy; past the window the planner still
  ignores a second result for a job id it has already applied.
- A usage event stands for one LLM call that really happened, and a re-run after a crash
  calls the LLM again - a second call the provider bills. So a usage id must repeat only when
  the *same* call is re-published (Bus retries a publish with the same id), never across
  runs: `stable_id(job.id, stream_seq, delivery, call_index)`. Within one delivery the index
  numbers the calls; a redelivery has a new delivery count, so its calls get new ids and the
  ledger counts both runs (it was billed for both). The stream sequence guards the case of a
  planner re-publishing the same job id after the first copy left the work queue: that is a
  new stream sequence, restarting the delivery count at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tripmesh_contracts.ids import stable_id
from tripmesh_contracts.messages import AgentJob, AgentResult, UsageEvent

from tripmesh_agent_runner.agents.outcome import AgentOutcome, LlmCallRecord


class ErrorKind:
    """Machine-readable `AgentResult.error_kind` values this service sets itself (the engine
    sets the agent-level ones: invalid_output, llm_error, tool_error, ...)."""

    DEADLINE_EXCEEDED = "deadline_exceeded"
    RUNNER_ERROR = "runner_error"
    CANCELLED = "cancelled"
    """The plan's run was cancelled before the job ran (plan_status.py): skipped, no LLM call."""


@dataclass(frozen=True)
class Delivery:
    """Where this copy of a job came from: the stream sequence and the delivery count."""

    stream_seq: int
    delivered: int


def result_id(job_id: str) -> str:
    return stable_id(job_id, "result")


def usage_id(job_id: str, delivery: Delivery, call_index: int) -> str:
    return stable_id(job_id, str(delivery.stream_seq), str(delivery.delivered), str(call_index))


def reservation_id(job_id: str, delivery: Delivery, call_index: int) -> str:
    """The ledger reservation of one call: the same for a reserve asked again within this
    delivery, new for a redelivery (its calls are new calls, billed again)."""
    return stable_id(job_id, str(delivery.stream_seq), str(delivery.delivered), str(call_index), "reserve")


def is_expired(job: AgentJob, now: datetime, grace: timedelta) -> bool:
    """True when the job's deadline passed longer ago than `grace`: nobody waits for it."""
    if job.deadline is None:
        return False
    deadline = job.deadline if job.deadline.tzinfo else job.deadline.replace(tzinfo=UTC)
    return now > deadline + grace


def usage_event(
    job: AgentJob, delivery: Delivery, call: LlmCallRecord, reservation: str | None = None
) -> UsageEvent:
    """The usage event of one LLM call (`call.call_index` numbers every attempt of this run
    from 1, retries included, so each attempt has an id of its own), with the ledger
    reservation it ran under (None when budgets are not enforced)."""
    return UsageEvent(
        id=usage_id(job.id, delivery, call.call_index or call.turn),
        user_id=job.user_id,
        plan_id=job.plan_id,
        correlation_id=job.correlation_id,
        job_id=job.id,
        run_id=job.run_id,
        version=job.version,
        agent=job.agent,
        model=call.model,
        provider=call.provider,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cost_usd=call.cost_usd,
        latency_ms=call.latency_ms,
        attempt=call.attempt,
        cache_hit=call.cache_hit,
        success=call.success,
        error=call.error,
        reservation_id=reservation,
    )


def _envelope(job: AgentJob) -> dict[str, Any]:
    return {
        "id": result_id(job.id),
        "user_id": job.user_id,
        "plan_id": job.plan_id,
        "correlation_id": job.correlation_id,
        "job_id": job.id,
        "run_id": job.run_id,
        "version": job.version,
        "agent": job.agent,
        "stage": job.stage,
        "round": job.round,
        "attempt": job.attempt,
    }


def result_from_outcome(job: AgentJob, outcome: AgentOutcome) -> AgentResult:
    fields = outcome.result_fields()
    if not outcome.ok:
        fields["output"] = None
        fields["error"] = (outcome.error or "agent failed")[:2000]
        fields["error_kind"] = outcome.error_kind or ErrorKind.RUNNER_ERROR
    return AgentResult(**_envelope(job), **fields)


def failed_result(
    job: AgentJob,
    *,
    error: str,
    error_kind: str,
    duration_ms: int = 0,
    calls: list[LlmCallRecord] | None = None,
) -> AgentResult:
    """A result for a job the engine could not finish (expired, or the engine raised)."""
    calls = calls or []
    return AgentResult(
        **_envelope(job),
        ok=False,
        error=error[:2000],
        error_kind=error_kind,
        cost_usd=sum((c.cost_usd for c in calls), Decimal(0)),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        duration_ms=duration_ms,
        model=calls[-1].model if calls else None,
    )
