"""One pull subscriber per agent type served: AgentJob in -> UsageEvents + AgentResult out.

Ack rules (ARCHITECTURE.md §2, §8): an agent that fails is a *result* (`ok=false` with an
`error_kind`), published and acked like a success - the planner decides what a failed agent
means for the plan. Only infrastructure failures (a publish the Bus could not land after its
retries) escape `run_job`, so `handle_message` naks the job and JetStream redelivers it.
`handle_message` also keeps in-progress acks flowing while the LLM works. A ledger that
cannot decide on a reservation (`LedgerUnavailable`) is such an infrastructure failure too:
the job is nak'ed and retried later, never run unreserved and never reported as
`budget_exhausted` (that is the ledger's *decision*, a result like any agent failure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from faststream.nats import NatsBroker, NatsMessage
from prometheus_client import Counter, Histogram
from tripmesh_contracts import streams, subjects
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_contracts.plans import AgentName
from tripmesh_kit import telemetry
from tripmesh_kit.bus import Bus
from tripmesh_kit.consume import PermanentError, handle_message
from tripmesh_kit.logging import bind_context, get_logger, unbind_context
from tripmesh_kit.subscribe import durable_subscriber

from tripmesh_agent_runner.agents.engine import CallObserver, run_agent
from tripmesh_agent_runner.agents.outcome import AgentOutcome
from tripmesh_agent_runner.budget import PriceBook, Reserver
from tripmesh_agent_runner.domain import (
    Delivery,
    ErrorKind,
    failed_result,
    is_expired,
    result_from_outcome,
)
from tripmesh_agent_runner.ledger_client import LedgerClient, LedgerUnavailable
from tripmesh_agent_runner.llm.base import LlmClient
from tripmesh_agent_runner.plan_status import PlanStatusBoard
from tripmesh_agent_runner.settings import AgentConfig, Settings
from tripmesh_agent_runner.tools.registry import ToolRegistry
from tripmesh_agent_runner.usage import UsagePublisher, UsagePublishError, settled

log = get_logger(__name__)

AGENT_JOBS = Counter(
    "tripmesh_agent_jobs",
    "Agent jobs finished, by agent and outcome (ok, the error_kind)",
    ["agent", "outcome"],
)
AGENT_JOB_SECONDS = Histogram(
    "tripmesh_agent_job_seconds",
    "Wall time of one agent job, LLM calls and tools included",
    ["agent"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

EngineFn = Callable[..., Awaitable[AgentOutcome]]
"""`run_agent(job, llm, tools, *, config, observer)` - the engine, replaceable in tests."""


@dataclass
class JobRunner:
    """Everything a job needs, built once per process by app.py."""

    bus: Bus
    llm: LlmClient
    tools: ToolRegistry
    settings: Settings
    plan_status: PlanStatusBoard | None = None
    """Where the planner marks cancelled runs; None = every job runs."""
    ledger: LedgerClient | None = None
    """Where each LLM call's maximum cost is reserved; None = budgets not enforced."""
    prices: PriceBook | None = None
    engine: EngineFn = run_agent
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def config_for(self, agent: AgentName) -> AgentConfig:
        return self.settings.agent_config(agent)

    async def run_job(self, job: AgentJob, delivery: Delivery) -> AgentResult:
        """Run one delivery of `job` and publish its usage events and its result."""
        bind_context(agent=job.agent.value, job_id=job.id)
        started = time.perf_counter()
        # which replica took which delivery of a job: what an operator (or the crash test)
        # reads to see the work a killed replica had in hand
        log.info("agent_job_started", delivered=delivery.delivered, plan_id=job.plan_id)
        attrs = {
            "plan_id": job.plan_id, "user_id": job.user_id, "agent": job.agent.value,
            "model": self.config_for(job.agent).model, "tripmesh.job_id": job.id,
            "tripmesh.stage": job.stage.value, "tripmesh.attempt": job.attempt,
            "messaging.message.delivery_count": delivery.delivered,
        }  # fmt: skip
        settles: set[asyncio.Task[None]] = set()  # the calls' settles, running beside the job
        try:
            # the job's span: a child of the planner's publish (via the job message's
            # traceparent); the LLM calls, usage events and the result are inside it
            with telemetry.span(f"agent.job {job.agent.value}", attrs) as span:
                result = await self._result_for(job, delivery, started, settles)
                if span is not None:
                    span.set_attributes(
                        telemetry.attributes(
                            {
                                "tripmesh.ok": result.ok, "tripmesh.error_kind": result.error_kind,
                                "gen_ai.usage.input_tokens": result.prompt_tokens,
                                "gen_ai.usage.output_tokens": result.completion_tokens,
                                "tripmesh.cost_usd": result.cost_usd,
                            }
                        )
                    )  # fmt: skip
                await self.bus.publish(result, subjects.agent_result(job.plan_id))
        finally:
            # after the result is out (off the plan's critical path), before the ack: a
            # finished job leaves no settle behind (and on a nak none is dropped mid-flight)
            await settled(settles)
            unbind_context("agent", "job_id")
        outcome = "ok" if result.ok else (result.error_kind or "failed")
        AGENT_JOBS.labels(agent=job.agent.value, outcome=outcome).inc()
        AGENT_JOB_SECONDS.labels(agent=job.agent.value).observe(time.perf_counter() - started)
        log.info(
            "agent_job_done",
            agent=job.agent.value,
            job_id=job.id,
            ok=result.ok,
            error_kind=result.error_kind,
            delivered=delivery.delivered,
            duration_ms=result.duration_ms,
            tokens=result.prompt_tokens + result.completion_tokens,
        )
        return result

    async def _result_for(
        self, job: AgentJob, delivery: Delivery, started: float, settles: set[asyncio.Task[None]]
    ) -> AgentResult:
        grace = timedelta(seconds=self.settings.deadline_grace_seconds)
        if is_expired(job, self.clock(), grace):
            # Nobody waits for this answer any more (the planner's own deadline handling has
            # moved on, or the plan was cancelled): don't pay for LLM calls. The result still
            # goes out so a planner that does wait learns why.
            return failed_result(
                job,
                error=f"job deadline {job.deadline} passed before it ran",
                error_kind=ErrorKind.DEADLINE_EXCEEDED,
            )
        if self.plan_status is not None and (status := await self.plan_status.skip_reason(job)):
            # The user cancelled (or deleted) the plan: nobody will use this answer, don't pay
            # for it. The result still goes out (the planner ignores it for a cancelled run).
            return failed_result(
                job, error=f"plan run {status} before the job ran", error_kind=ErrorKind.CANCELLED
            )
        config = self.config_for(job.agent)
        observer: CallObserver = UsagePublisher(self.bus, delivery, self._reserver(config, delivery), settles)
        try:
            outcome = await self.engine(job, self.llm, self.tools, config=config, observer=observer)
        except (UsagePublishError, LedgerUnavailable):
            raise  # infrastructure: nak, JetStream redelivers the job
        except Exception as exc:
            # A bug in the engine or an agent is deterministic: redelivering would fail again
            # and only delay the planner. Answer with a failed result instead.
            log.exception("agent_engine_crashed")
            return failed_result(
                job,
                error=f"{type(exc).__name__}: {exc}",
                error_kind=ErrorKind.RUNNER_ERROR,
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
        return result_from_outcome(job, outcome)

    def _reserver(self, config: AgentConfig, delivery: Delivery) -> Reserver | None:
        if self.ledger is None:
            return None
        prices = self.prices or PriceBook(self.settings.local_price())
        return Reserver(
            ledger=self.ledger,
            prices=prices,
            fallback_price=config.fallback_price,
            ttl_seconds=self.settings.reservation_ttl(config),
            delivery=delivery,
            outage_wait_seconds=self.settings.ledger_outage_wait_seconds,
        )


def register_handlers(broker: NatsBroker, runner: JobRunner) -> list[AgentName]:
    """A pull subscriber on the shared durable of each agent type in AGENT_RUNNER_AGENTS."""
    for agent in runner.settings.agents:
        _register_agent(broker, runner, agent)
    return list(runner.settings.agents)


def _register_agent(broker: NatsBroker, runner: JobRunner, agent: AgentName) -> None:
    spec = streams.runner_consumer(agent)

    async def on_job(msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        delivery = Delivery(stream_seq=meta.sequence.stream, delivered=meta.num_delivered)

        async def work_with_delivery(job: AgentJob) -> None:
            if job.agent != agent:
                # a publisher bug (subject and body disagree): it can never be right here
                raise PermanentError(f"{job.agent.value} job on {raw.subject}")
            await runner.run_job(job, delivery)

        await handle_message(raw, AgentJob, work_with_delivery, spec=spec, bus=runner.bus)

    on_job.__name__ = on_job.__qualname__ = f"on_{agent.value}_job"
    durable_subscriber(broker, spec, max_workers=runner.settings.concurrency)(on_job)
