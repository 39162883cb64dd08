"""Planner settings (ARCHITECTURE.md §9): `PLANNER_` prefix, shared names unprefixed."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tripmesh_contracts.plans import AgentName
from tripmesh_kit.settings import ServiceSettings, shared


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLANNER_", extra="ignore", populate_by_name=True)

    service_name: str = "planner"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=shared("DATABASE_URL", "PLANNER_DATABASE_URL"),
    )
    db_schema: str = "planner"
    checkpoint_schema: str = "planner_checkpoints"
    """LangGraph's checkpoint tables live in their own schema (set through search_path)."""

    max_budget_rounds: int = Field(default=2, ge=0, le=10)
    """How many times options re-run with tighter constraints before asking for approval."""
    agent_deadline_seconds: float = Field(default=60.0, gt=0)
    agent_deadlines: dict[str, float] = Field(default_factory=lambda: {"planning": 120.0})
    """Per-agent overrides as JSON, e.g. PLANNER_AGENT_DEADLINES='{"planning": 180}'."""
    agent_attempts: int = Field(default=2, ge=1, le=10)
    """Attempts per agent job (first try included) before its section is degraded."""
    agent_attempts_overrides: dict[str, int] = Field(default_factory=dict)

    sweeper_interval_seconds: float = Field(default=5.0, gt=0)
    stall_after_seconds: float = Field(default=30.0, gt=0)
    """A running plan untouched this long is re-checked by the sweeper (crash recovery)."""
    unpublished_after_seconds: float = Field(default=5.0, ge=0)
    """A recorded job still unpublished after this long is published again (same id)."""

    plan_status_bucket: str = Field(default="plan-status", pattern=r"^[A-Za-z0-9_-]+$")
    """KV bucket where a cancel marks `<plan_id>.<run_id>` for the agent-runners to skip."""

    command_workers: int = Field(default=4, ge=1)
    result_workers: int = Field(default=16, ge=1)
    rpc_workers: int = Field(default=8, ge=1)
    db_pool_size: int = Field(default=10, ge=2)
    lock_pool_size: int = Field(default=8, ge=1)
    """Sessions holding plan locks: how many plans one replica advances at the same time."""
    checkpoint_pool_size: int = Field(default=2, ge=1)
    """AsyncPostgresSaver serialises its queries per process (an asyncio lock), so more
    connections than two buy nothing."""
    lock_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long a handler waits for another replica's work on the same plan before nak."""

    def deadline_for(self, agent: AgentName | str) -> float:
        return self.agent_deadlines.get(AgentName(agent).value, self.agent_deadline_seconds)

    def attempts_for(self, agent: AgentName | str) -> int:
        return self.agent_attempts_overrides.get(AgentName(agent).value, self.agent_attempts)
