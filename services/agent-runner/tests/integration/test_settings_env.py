"""How the process reads its environment (no server needed; lives here with the wiring tests
because the unit-test folder belongs to the engine's owner)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tripmesh_agent_runner.llm.base import LOCAL_MODEL
from tripmesh_agent_runner.settings import PROVIDER_TIERS, Settings
from tripmesh_contracts.plans import AgentName

PROVIDER_KEYS = [key for key, _ in PROVIDER_TIERS.values()]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AGENT_RUNNER_") or "_AGENT_" in name or name in PROVIDER_KEYS:
            monkeypatch.delenv(name)


def test_without_a_provider_key_every_agent_uses_the_local_stand_in() -> None:
    settings = Settings()
    assert settings.agents == list(AgentName)
    assert settings.concurrency == 8
    assert {settings.agent_config(a).model for a in AgentName} == {LOCAL_MODEL}


def test_a_provider_key_selects_the_seed_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    settings = Settings()
    models = {a: settings.agent_config(a).model for a in AgentName}
    assert models[AgentName.PLANNING] == models[AgentName.TRANSPORT] == "gpt-5"
    assert models[AgentName.LOCATION] == models[AgentName.ACTIVITY] == "gpt-5-mini"
    assert models[AgentName.ACCOMMODATION] == "gpt-5-mini"
    assert models[AgentName.BUDGET] == models[AgentName.WEATHER] == "gpt-5-nano"
    monkeypatch.setenv("AGENT_RUNNER_MODEL_PROVIDER", "local")
    assert Settings().agent_config(AgentName.PLANNING).model == LOCAL_MODEL


def test_per_agent_names_and_agent_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RUNNER_AGENTS", " Transport,accommodation,transport ")
    monkeypatch.setenv("AGENT_RUNNER_CONCURRENCY", "3")
    monkeypatch.setenv("PLANNING_AGENT_MODEL", "ollama/llama3.1")
    monkeypatch.setenv("PLANNING_AGENT_API_BASE", "http://gpu-box:11434")
    monkeypatch.setenv("PLANNING_AGENT_TEMPERATURE", "0.3")
    monkeypatch.setenv("PLANNING_AGENT_MAX_TOKENS", "2000")
    monkeypatch.setenv("PLANNING_AGENT_TIMEOUT", "45")  # the seeds' name
    monkeypatch.setenv("AGENT_RUNNER_PLANNING_NUM_RETRIES", "5")
    monkeypatch.setenv("AGENT_RUNNER_PLANNING_INPUT_PRICE_PER_1K", "0")
    monkeypatch.setenv("AGENT_RUNNER_PLANNING_OUTPUT_PRICE_PER_1K", "0")
    settings = Settings()
    assert settings.agents == [AgentName.TRANSPORT, AgentName.ACCOMMODATION]
    assert settings.concurrency == 3
    planning = settings.agent_config(AgentName.PLANNING)
    assert (planning.model, planning.api_base) == ("ollama/llama3.1", "http://gpu-box:11434")
    assert (planning.temperature, planning.max_tokens) == (0.3, 2000)
    assert (planning.timeout_seconds, planning.num_retries) == (45.0, 5)
    assert planning.fallback_price.cost(1000, 1000) == 0
    # another agent keeps the defaults, including a non-zero fallback price
    budget = settings.agent_config(AgentName.BUDGET)
    assert budget.fallback_price.cost(1000, 1000) > Decimal(0)
    assert budget.num_retries == settings.default_num_retries


def test_an_unknown_agent_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RUNNER_AGENTS", "transport,teleport")
    with pytest.raises(ValueError, match="teleport"):
        Settings()


def test_cache_retry_and_local_latency_names(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.cache_enabled and defaults.cache_ttl_seconds == 3600
    assert defaults.plan_status_bucket == "plan-status" and defaults.local_model_latency_ms == 0
    monkeypatch.setenv("AGENT_RUNNER_CACHE_ENABLED", "false")
    monkeypatch.setenv("AGENT_RUNNER_CACHE_TTL_SECONDS", "600")
    monkeypatch.setenv("AGENT_RUNNER_LOCAL_MODEL_LATENCY_MS", "300")
    monkeypatch.setenv("AGENT_RUNNER_RETRY_BACKOFF_SECONDS", "0.5")
    monkeypatch.setenv("AGENT_RUNNER_RETRY_BACKOFF_MAX_SECONDS", "4")
    settings = Settings()
    assert not settings.cache_enabled and settings.cache_ttl_seconds == 600
    assert settings.local_model_latency_ms == 300
    weather = settings.agent_config(AgentName.WEATHER)
    assert (weather.retry_backoff_seconds, weather.retry_backoff_max_seconds) == (0.5, 4.0)
    monkeypatch.setenv("AGENT_RUNNER_CACHE_BUCKET", "not a bucket name")
    with pytest.raises(ValueError, match="cache_bucket"):
        Settings()


def test_budget_enforcement_names(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.budget_enforced and defaults.reservation_ttl_seconds is None
    assert defaults.ledger_timeout_seconds > 0 and defaults.ledger_attempts >= 1
    monkeypatch.setenv("AGENT_RUNNER_BUDGET_ENFORCED", "false")
    monkeypatch.setenv("AGENT_RUNNER_RESERVATION_TTL_SECONDS", "120")
    monkeypatch.setenv("AGENT_RUNNER_LEDGER_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("AGENT_RUNNER_LEDGER_ATTEMPTS", "4")
    monkeypatch.setenv("AGENT_RUNNER_LOCAL_INPUT_PRICE_PER_1K", "0.01")
    settings = Settings()
    assert not settings.budget_enforced and settings.reservation_ttl_seconds == 120
    assert (settings.ledger_timeout_seconds, settings.ledger_attempts) == (0.5, 4)
    assert settings.local_price().input_per_1k == Decimal("0.01")
