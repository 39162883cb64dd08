"""The agents, in-process: an AgentJob in, the graph's outcome dict out, no bus in between.

The same code the agent-runner runs for a job (`run_agent` with the litellm client, the tool
registry and the per-agent call config from the agent-runner's own Settings, read from the
same environment), minus what exists only because the runner is a separate service: no
usage events (no ledger), no budget reservations, no plan-status board, no LLM cache (the
bench turns it off for tripmesh too). A failed attempt is retried as the planner does
(`attempts_for`, the same non-retryable error kinds), and the outcome is shaped by the
planner's own `outcome_of`, so the graph sees exactly what it sees in tripmesh.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tripmesh_agent_runner.agents.engine import run_agent
from tripmesh_agent_runner.domain import ErrorKind, failed_result, result_from_outcome
from tripmesh_agent_runner.llm.litellm_client import LitellmClient
from tripmesh_agent_runner.settings import Settings as RunnerSettings
from tripmesh_agent_runner.tools import build_tool_registry
from tripmesh_agent_runner.tools.climate import OPEN_METEO_URL
from tripmesh_contracts.messages import AgentJob, AgentResult
from tripmesh_planner.executions import NOT_RETRYABLE, next_attempt, outcome_of
from tripmesh_planner.settings import Settings as PlannerSettings


class InProcessAgents:
    def __init__(self, planner: PlannerSettings, runner: RunnerSettings | None = None) -> None:
        self.planner = planner
        self.settings = runner or RunnerSettings()
        self.llm = LitellmClient(
            local_price=self.settings.local_price(),
            local_latency_seconds=self.settings.local_model_latency_ms / 1000,
        )
        self.tools = build_tool_registry(
            self.settings.weather_provider, self.settings.open_meteo_url or OPEN_METEO_URL
        )

    def warm_up(self) -> None:
        """`import litellm` costs seconds of CPU: paid before serving, as the runner does."""
        _ = self.llm.litellm

    async def run(self, job: AgentJob) -> AgentResult:
        """One attempt, as the runner's JobRunner runs it (an engine crash is a failed result)."""
        started = time.perf_counter()
        config = self.settings.agent_config(job.agent)
        try:
            outcome = await run_agent(job, self.llm, self.tools, config=config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return failed_result(
                job,
                error=f"{type(exc).__name__}: {exc}",
                error_kind=ErrorKind.RUNNER_ERROR,
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
        return result_from_outcome(job, outcome)

    async def outcome(self, job: AgentJob) -> dict[str, Any]:
        """The job run to a final outcome: retried while the planner would retry it."""
        while True:
            result = await self.run(job)
            agent = job.agent
            retry = (
                not result.ok
                and job.attempt < self.planner.attempts_for(agent)
                and result.error_kind not in NOT_RETRYABLE
            )
            if not retry:
                return outcome_of(row_of(job, result))
            job = next_attempt(job, self.planner.deadline_for(agent))


def row_of(job: AgentJob, result: AgentResult) -> dict[str, Any]:
    """The planner's agent_executions row this result would have become (outcome_of's input)."""
    return {
        "agent": job.agent.value,
        "status": "completed" if result.ok else "failed",
        "output": result.output if result.ok else None,
        "error": None if result.ok else (result.error or result.error_kind or "agent failed"),
        "error_kind": None if result.ok else result.error_kind,
        "job_id": job.id,
        "attempt": job.attempt,
        "round": job.round,
        "model": result.model,
        "cost_usd": result.cost_usd,
        "duration_ms": result.duration_ms,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
    }
