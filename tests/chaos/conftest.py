"""The reliability battery (issue #12): shared options and fixtures.

`--chaos-tier=pr` (default; what `make test` and CI run) or `full` (`make test-chaos-full`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tripmesh_devstack.services import default_services

sys.path.insert(0, str(Path(__file__).parent))  # report.py and the harness import by name

from harness import (  # importable once the directory is on the path
    ChaosEnv,
    ChaosStackFactory,
    LlmProcess,
    start_chaos_stack,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-tier",
        choices=("pr", "full"),
        default="pr",
        help="reliability battery tier: pr (CI, ~15 min) or full (larger counts, longer outages)",
    )


FULL_TIER_TIMEOUT_S = 5400
"""A full-tier test's hard timeout (the kill storm's 1,000 plans take ~45 min here); the PR
tier keeps each module's own. Stuck work is caught sooner by each test's liveness bounds."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--chaos-tier", default="pr") != "full":
        return
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(pytest.mark.timeout(FULL_TIER_TIMEOUT_S))


@pytest.fixture(scope="session")
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--chaos-tier", default="pr"))


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStackFactory]:
    """`chaos_stack(name, replicas={...}, replica_env={...}, env={service: {...}}, stack_env={...},
    latency_ms="200-3000")`: the test LLM as a process and the stack as `make up` starts it,
    its agents routed to that LLM. Everything a module started stops when the module ends, so
    two modules' stacks never compete for the two cores."""
    started: list[ChaosEnv] = []

    def start(
        name: str,
        *,
        replicas: dict[str, int] | None = None,
        replica_env: dict[str, list[dict[str, str]]] | None = None,
        env: dict[str, dict[str, str]] | None = None,
        stack_env: dict[str, str] | None = None,
        latency_ms: str = "200-3000",
        seed: int = 12,
    ) -> ChaosEnv:
        workdir = tmp_path_factory.mktemp(f"chaos-{name}")
        llm = LlmProcess(workdir, latency_ms=latency_ms, seed=seed)
        llm.start()
        per_service = {k: dict(v) for k, v in (env or {}).items()}
        per_service["agent-runner"] = {**llm.agent_env(), **per_service.get("agent-runner", {})}
        services = default_services(
            free_ports=True, replicas=replicas, replica_env=replica_env, env=per_service
        )
        try:
            stack = start_chaos_stack(workdir, services, stack_env)
        except BaseException:
            llm.stop()
            raise
        started.append(ChaosEnv(stack, llm, workdir))
        return started[-1]

    yield start
    for chaos in reversed(started):
        chaos.stack.stop()
        chaos.llm.stop()
