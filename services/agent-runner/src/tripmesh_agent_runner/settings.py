"""Agent-runner settings (ARCHITECTURE.md §4, §9).

Unprefixed names operators know from the seeds: `<AGENT>_AGENT_MODEL`, `_TEMPERATURE`,
`_MAX_TOKENS`, `_API_BASE` (e.g. `PLANNING_AGENT_MODEL=anthropic/claude-sonnet-4-5`) and
`AGENT_RUNNER_AGENTS`. Everything else takes the `AGENT_RUNNER_` prefix, per agent as
`AGENT_RUNNER_<AGENT>_TIMEOUT_SECONDS`, `_NUM_RETRIES`, `_INPUT_PRICE_PER_1K`,
`_OUTPUT_PRICE_PER_1K` (the seeds' `<AGENT>_AGENT_TIMEOUT` / `_RETRIES` are accepted too).

Default model: the deterministic local stand-in (`tripmesh-local/...`) unless a provider key
is in the environment, then that provider's tier (planning/transport strong,
location/accommodation/activity mid, budget/weather cheap), as in the seeds.
"""

from __future__ import annotations

import os
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from tripmesh_contracts.plans import AgentName
from tripmesh_kit.settings import ServiceSettings

from tripmesh_agent_runner.llm.base import LOCAL_MODEL, LOCAL_PROVIDER, ModelPrice


class Tier(StrEnum):
    STRONG = "strong"
    MID = "mid"
    CHEAP = "cheap"


AGENT_TIERS: dict[AgentName, Tier] = {
    AgentName.PLANNING: Tier.STRONG,
    AgentName.TRANSPORT: Tier.STRONG,
    AgentName.LOCATION: Tier.MID,
    AgentName.ACCOMMODATION: Tier.MID,
    AgentName.ACTIVITY: Tier.MID,
    AgentName.BUDGET: Tier.CHEAP,
    AgentName.WEATHER: Tier.CHEAP,
}

# Provider -> (env var holding its key, model per tier). Checked in this order when
# AGENT_RUNNER_MODEL_PROVIDER=auto. Azure and OpenAI-compatible servers need a deployment
# name or api_base, so they are configured per agent (<AGENT>_AGENT_MODEL), never guessed.
PROVIDER_TIERS: dict[str, tuple[str, dict[Tier, str]]] = {
    "openai": ("OPENAI_API_KEY", {Tier.STRONG: "gpt-5", Tier.MID: "gpt-5-mini", Tier.CHEAP: "gpt-5-nano"}),
    "anthropic": (
        "ANTHROPIC_API_KEY",
        {
            Tier.STRONG: "anthropic/claude-sonnet-4-5",
            Tier.MID: "anthropic/claude-haiku-4-5",
            Tier.CHEAP: "anthropic/claude-haiku-4-5",
        },
    ),
    "gemini": (
        "GEMINI_API_KEY",
        {
            Tier.STRONG: "gemini/gemini-2.5-pro",
            Tier.MID: "gemini/gemini-2.5-flash",
            Tier.CHEAP: "gemini/gemini-2.5-flash-lite",
        },
    ),
}


class AgentOverrides(BaseModel):
    """What the environment (or a caller) set for one agent; None = use the default."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    api_base: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    num_retries: int | None = Field(default=None, ge=0)
    input_price_per_1k: Decimal | None = Field(default=None, ge=0)
    output_price_per_1k: Decimal | None = Field(default=None, ge=0)


class AgentConfig(BaseModel):
    """The resolved LLM settings of one agent type."""

    model_config = ConfigDict(frozen=True)

    agent: AgentName
    model: str
    temperature: float | None
    """None = the provider's default (gpt-5 models accept only their default temperature)."""
    max_tokens: int
    api_base: str | None
    timeout_seconds: float
    """Per LLM call, passed to litellm."""
    num_retries: int
    """Retries of one LLM request after a transient failure (429, 5xx, timeout, connection).
    Retry owner for the LLM hop is the engine's own bounded loop (agents/llm_calls.py), and
    only it: litellm and the OpenAI SDK are called with num_retries=0 / max_retries=0,
    because their retries are invisible to us (one response, no trace of the failed tries)
    and every HTTP attempt must be one usage event. Redelivery of a whole job is
    JetStream's (max_deliver), a different hop."""
    retry_backoff_seconds: float = 1.0
    """First retry delay (doubling, jittered); a 429's Retry-After takes precedence."""
    retry_backoff_max_seconds: float = 20.0
    input_price_per_1k: Decimal
    output_price_per_1k: Decimal
    """Fallback USD prices per 1k tokens, used only when litellm's cost map does not know the
    model, so a paid model is never silently recorded at 0 (set them to 0 explicitly for a
    free self-hosted model)."""

    @property
    def is_local(self) -> bool:
        return self.model.startswith(LOCAL_PROVIDER + "/")

    @property
    def fallback_price(self) -> ModelPrice:
        return ModelPrice(self.input_price_per_1k, self.output_price_per_1k)


# env name suffixes: (field, unprefixed seeds name pattern or None)
_UNPREFIXED = {
    "model": "MODEL",
    "temperature": "TEMPERATURE",
    "max_tokens": "MAX_TOKENS",
    "api_base": "API_BASE",
}
_PREFIXED = {
    "timeout_seconds": ("TIMEOUT_SECONDS", "TIMEOUT"),
    "num_retries": ("NUM_RETRIES", "RETRIES"),
    "input_price_per_1k": ("INPUT_PRICE_PER_1K", None),
    "output_price_per_1k": ("OUTPUT_PRICE_PER_1K", None),
}


def agent_env_names(agent: AgentName) -> dict[str, list[str]]:
    """Environment names read for `agent`, by field, first one set wins."""
    up = agent.value.upper()
    names: dict[str, list[str]] = {f: [f"{up}_AGENT_{s}"] for f, s in _UNPREFIXED.items()}
    for field, (suffix, seeds_suffix) in _PREFIXED.items():
        names[field] = [f"AGENT_RUNNER_{up}_{suffix}"]
        if seeds_suffix:
            names[field].append(f"{up}_AGENT_{seeds_suffix}")
    return names


class PerAgentEnvSource(PydanticBaseSettingsSource):
    """Builds `agent_overrides` from the per-agent names, and notes which provider keys are
    present (names only: litellm reads the keys themselves from the environment)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = os.environ
        overrides: dict[str, dict[str, str]] = {}
        for agent in AgentName:
            values = {}
            for field, names in agent_env_names(agent).items():
                found = next((env[n] for n in names if env.get(n, "").strip()), None)
                if found is not None:
                    values[field] = found.strip()
            if values:
                overrides[agent.value] = values
        keys = [key for key, _ in PROVIDER_TIERS.values() if env.get(key, "").strip()]
        return {"agent_overrides": overrides, "provider_keys_present": keys}


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_RUNNER_", extra="ignore", populate_by_name=True)

    service_name: str = "agent-runner"
    agents: Annotated[list[AgentName], NoDecode] = Field(default_factory=lambda: list(AgentName))
    """AGENT_RUNNER_AGENTS: comma list of the agent types this replica serves."""
    concurrency: int = Field(default=8, ge=1)
    """Jobs in flight per agent type per replica (the pull subscriber's max_workers)."""
    http_port: int = 8082
    """AGENT_RUNNER_HTTP_PORT: /healthz, /readyz, /metrics (devstack uses 8082 too)."""
    deadline_grace_seconds: float = Field(default=300.0, ge=0)
    """A job whose deadline passed more than this long ago is answered `deadline_exceeded`
    without calling the LLM: the planner has given up on it (or the plan was cancelled)."""
    model_provider: str = "auto"
    """auto | local | openai | anthropic | gemini: where the default per-agent models come
    from. auto = the first provider whose key is set, else the local stand-in."""
    default_max_tokens: int = Field(default=4096, ge=1)
    default_timeout_seconds: float = Field(default=60.0, gt=0)
    default_num_retries: int = Field(default=2, ge=0)
    fallback_input_price_per_1k: Decimal = Field(default=Decimal("0.005"), ge=0)
    fallback_output_price_per_1k: Decimal = Field(default=Decimal("0.015"), ge=0)
    local_input_price_per_1k: Decimal = Field(default=Decimal(0), ge=0)
    local_output_price_per_1k: Decimal = Field(default=Decimal(0), ge=0)
    """Price of the local stand-in: 0, it costs nothing; set it to exercise budgets end to end."""
    weather_provider: Literal["estimate", "open-meteo"] = "estimate"
    """estimate: climate normals, offline. open-meteo: live forecasts (needs the network)."""
    open_meteo_url: str | None = None
    """Override of the Open-Meteo forecast endpoint (a self-hosted instance)."""
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    """AGENT_RUNNER_RETRY_BACKOFF_SECONDS: delay before the first retry of a failed LLM
    request; doubles per retry (jittered), capped by retry_backoff_max_seconds."""
    retry_backoff_max_seconds: float = Field(default=20.0, ge=0)
    cache_enabled: bool = True
    """AGENT_RUNNER_CACHE_ENABLED: serve identical LLM requests and tool lookups from the
    shared JetStream KV cache. Off in benchmarks and fault tests (identical plans hit it)."""
    cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    """AGENT_RUNNER_CACHE_TTL_SECONDS: the cache bucket's max_age."""
    cache_bucket: str = Field(default="agent-runner-cache", pattern=r"^[A-Za-z0-9_-]+$")
    cache_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    """Bound of the cache bucket on disk; when full, new entries are simply not cached."""
    plan_status_bucket: str = Field(default="plan-status", pattern=r"^[A-Za-z0-9_-]+$")
    """KV bucket the planner writes `<plan_id>.<run_id>` = cancelled into; jobs of such runs
    are skipped (see plan_status.py)."""
    local_model_latency_ms: float = Field(default=0.0, ge=0)
    """AGENT_RUNNER_LOCAL_MODEL_LATENCY_MS: make the local stand-in answer this slowly (per
    call), to load-test or crash-test the runner with calls that take time like real ones."""
    budget_enforced: bool = True
    """AGENT_RUNNER_BUDGET_ENFORCED: reserve each LLM call's maximum cost in the ledger
    (svc.ledger.reserve) before making it. Fails closed: no ledger answer, no call."""
    reservation_ttl_seconds: float | None = Field(default=None, gt=0, le=3600)
    """AGENT_RUNNER_RESERVATION_TTL_SECONDS: after this an unsettled reservation is charged at
    its maximum. None = per agent, its LLM timeout x (num_retries + 1) + 60 s."""
    call_ref_header: str = Field(default="X-Tripmesh-Reservation-Id", pattern=r"^([A-Za-z0-9-]+)?$")
    """AGENT_RUNNER_CALL_REF_HEADER: the request header that carries each LLM call's ledger
    reservation id to the provider, to reconcile its invoice with the ledger; empty: none sent."""
    ledger_timeout_seconds: float = Field(default=2.0, gt=0)
    """AGENT_RUNNER_LEDGER_TIMEOUT_SECONDS: one svc.ledger.* request."""
    ledger_attempts: int = Field(default=3, ge=1)
    """Tries of one ledger request before the job's delivery fails (JetStream redelivers it)."""
    ledger_outage_wait_seconds: float = Field(default=600.0, ge=0)
    """AGENT_RUNNER_LEDGER_OUTAGE_WAIT_SECONDS: how long a job waits for a ledger that cannot
    decide its reservation (unreachable, or its Postgres down), held with in-progress acks,
    before the delivery fails and JetStream redelivers it. Waiting pauses the runner instead of
    burning the job's deliveries: at 0 (fail at once) a 150 s Postgres outage used up a job's 5
    deliveries and dead-lettered it (issue #12's full-tier Postgres test, 2026-12-04)."""
    agent_overrides: dict[AgentName, AgentOverrides] = Field(default_factory=dict)
    provider_keys_present: list[str] = Field(default_factory=list)

    @field_validator("agents", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = [v.strip().lower() for v in value.split(",") if v.strip()]
            if items == ["all"]:
                return list(AgentName)
            return items
        return value

    @field_validator("agents")
    @classmethod
    def _no_duplicates(cls, value: list[AgentName]) -> list[AgentName]:
        if not value:
            raise ValueError("AGENT_RUNNER_AGENTS names no agent type")
        return list(dict.fromkeys(value))

    @field_validator("model_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"auto", "local", *PROVIDER_TIERS}:
            raise ValueError(f"unknown model provider {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            PerAgentEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    def default_provider(self) -> str:
        """The provider whose tiers give the default models ("local" for the stand-in)."""
        if self.model_provider != "auto":
            return self.model_provider
        for provider, (key, _) in PROVIDER_TIERS.items():
            if key in self.provider_keys_present:
                return provider
        return "local"

    def local_price(self) -> ModelPrice:
        return ModelPrice(self.local_input_price_per_1k, self.local_output_price_per_1k)

    def reservation_ttl(self, config: AgentConfig) -> float:
        if self.reservation_ttl_seconds is not None:
            return self.reservation_ttl_seconds
        return min(config.timeout_seconds * (config.num_retries + 1) + 60.0, 3600.0)

    def agent_config(self, agent: AgentName) -> AgentConfig:
        o = self.agent_overrides.get(agent, AgentOverrides())
        provider = self.default_provider()
        default_model = (
            LOCAL_MODEL if provider == "local" else PROVIDER_TIERS[provider][1][AGENT_TIERS[agent]]
        )
        return AgentConfig(
            agent=agent,
            model=o.model or default_model,
            temperature=o.temperature,
            max_tokens=o.max_tokens or self.default_max_tokens,
            api_base=o.api_base,
            timeout_seconds=o.timeout_seconds or self.default_timeout_seconds,
            num_retries=self.default_num_retries if o.num_retries is None else o.num_retries,
            retry_backoff_seconds=self.retry_backoff_seconds,
            retry_backoff_max_seconds=self.retry_backoff_max_seconds,
            input_price_per_1k=(
                self.fallback_input_price_per_1k if o.input_price_per_1k is None else o.input_price_per_1k
            ),
            output_price_per_1k=(
                self.fallback_output_price_per_1k if o.output_price_per_1k is None else o.output_price_per_1k
            ),
        )
