"""Helpers the runner's integration tests share (importable: conftest puts this directory on
sys.path)."""

from __future__ import annotations

from typing import Any

from tripmesh_agent_runner.llm.base import LOCAL_MODEL
from tripmesh_agent_runner.settings import Settings
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import AgentJob
from tripmesh_contracts.plans import AgentName
from tripmesh_kit.bus import Bus


def runner_settings(nats_url: str, agents: list[AgentName] | None = None, **extra: Any) -> Settings:
    """Every agent pinned to the local stand-in (whatever <AGENT>_AGENT_MODEL the shell has),
    the shared cache off unless a test turns it on (with a bucket of its own), and a
    plan-status bucket of the test's own, so no test sees another's entries."""
    overrides = {a.value: {"model": LOCAL_MODEL} for a in AgentName}
    for agent, values in extra.pop("agent_overrides", {}).items():
        overrides[agent] = {**overrides[agent], **values}
    extra.setdefault("cache_enabled", False)
    extra.setdefault("plan_status_bucket", "test-plan-status")
    # no ledger answers svc.ledger.reserve in these tests; the budget tests turn it on with a
    # responder of their own (test_budget_enforcement.py)
    extra.setdefault("budget_enforced", False)
    return Settings(
        nats_url=nats_url,
        agents=agents or list(AgentName),
        concurrency=4,
        drain_timeout_seconds=10,
        model_provider="local",
        agent_overrides=overrides,
        **extra,
    )


async def publish_job(bus: Bus, job: AgentJob) -> int:
    """Publish `job` to its agent's subject; its stream sequence."""
    ack = await bus.publish(job, subjects.agent_job(job.agent))
    return int(ack.seq)
