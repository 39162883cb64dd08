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
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tripmesh_contracts.ids import stable_id
from tripmesh_contracts.messages import AgentJob, AgentResult, UsageEvent


class ErrorKind:
    """Machine-readable `AgentResult.error_kind` values this service sets itself (the engine
    sets the agent-level ones: invalid_output, llm_error, tool_error, ...)."""

    DEADLINE_EXCEEDED = "deadline_exceeded"
    RUNNER_ERROR = "runner_error"


@dataclass(frozen=True)
class Delivery:
    """Where this copy of a job came from: the stream sequence and the delivery count."""

    stream_seq: int
    delivered: int


@dataclass(frozen=True)
class LlmCall:
    """One LLM call as it happened, in the runner's own terms (see usage.py)."""

    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    success: bool
    cost_usd: Decimal
    cache_hit: bool = False
    error: str | None = None


def result_id(job_id: str) -> str:
    return stable_id(job_id, "result")


def usage_id(job_id: str, delivery: Delivery, call_index: int) -> str:
    return stable_id(job_id, str(delivery.stream_seq), str(delivery.delivered), str(call_index))


def is_expired(job: AgentJob, now: datetime, grace: timedelta) -> bool:
    """True when the job's deadline passed longer ago than `grace`: nobody waits for it."""
    return job.deadline is not None and now > job.deadline + grace


def usage_event(job: AgentJob, delivery: Delivery, call_index: int, call: LlmCall) -> UsageEvent:
    return UsageEvent(
        id=usage_id(job.id, delivery, call_index),
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
        # the job's attempt (planner retries) times nothing else: litellm's internal retries
        # of one call are inside this one call's latency and cost
        attempt=job.attempt,
        cache_hit=call.cache_hit,
        success=call.success,
        error=call.error,
    )


def agent_result(
    job: AgentJob,
    *,
    ok: bool,
    calls: list[LlmCall],
    duration_ms: int,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    error_kind: str | None = None,
) -> AgentResult:
    models = [c.model for c in calls]
    return AgentResult(
        id=result_id(job.id),
        user_id=job.user_id,
        plan_id=job.plan_id,
        correlation_id=job.correlation_id,
        job_id=job.id,
        run_id=job.run_id,
        version=job.version,
        agent=job.agent,
        stage=job.stage,
        round=job.round,
        attempt=job.attempt,
        ok=ok,
        output=output if ok else None,
        error=None if ok else (error or "agent failed")[:2000],
        error_kind=None if ok else (error_kind or ErrorKind.RUNNER_ERROR),
        cost_usd=sum((c.cost_usd for c in calls), Decimal("0")),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        duration_ms=duration_ms,
        model=models[-1] if models else None,
    )
