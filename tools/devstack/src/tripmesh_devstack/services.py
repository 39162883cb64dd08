"""What the stack runs: one `ServiceSpec` per service, N replicas each."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from tripmesh_devstack import procs
from tripmesh_devstack.ports import HOST


class StackError(RuntimeError):
    """A service or server would not start, or the data directory is in use."""


@dataclass
class ServiceSpec:
    """A service run as `argv` (default `python -m <module>`), configured only by env vars.

    Replica i gets `env`, then `replica_env[i]` (if any), and its HTTP port in `port_env`:
    `port` for replica 0 (0 = a free port), a free port for the others unless their
    `replica_env` names one. Readiness is `GET http://127.0.0.1:<port><ready_path>` == 200.
    """

    name: str
    module: str
    port_env: str
    port: int = 0
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    replica_env: list[dict[str, str]] = field(default_factory=list)
    argv: list[str] | None = None
    ready_path: str = "/readyz"

    def command(self) -> list[str]:
        return list(self.argv) if self.argv is not None else [sys.executable, "-m", self.module]

    def env_for(self, index: int) -> dict[str, str]:
        extra = self.replica_env[index] if index < len(self.replica_env) else {}
        return {**self.env, **extra}


# name -> (module, port variable, port for `make up`)
SERVICES: dict[str, tuple[str, str, int]] = {
    "gateway": ("tripmesh_gateway", "GATEWAY_PORT", 8080),
    "planner": ("tripmesh_planner", "PLANNER_HTTP_PORT", 8081),
    "agent-runner": ("tripmesh_agent_runner", "AGENT_RUNNER_HTTP_PORT", 8082),
    "cost-ledger": ("tripmesh_cost_ledger", "COST_LEDGER_HTTP_PORT", 8083),
    "vector-sync": ("tripmesh_vector_sync", "VECTOR_SYNC_HTTP_PORT", 8084),
}


def default_services(
    *,
    free_ports: bool = False,
    ports: Mapping[str, int] | None = None,
    replicas: Mapping[str, int] | None = None,
    env: Mapping[str, Mapping[str, str]] | None = None,
    replica_env: Mapping[str, list[dict[str, str]]] | None = None,
) -> list[ServiceSpec]:
    """The five tripmesh services, as `make up` runs them.

    `free_ports=True` (tests) picks free HTTP ports instead of 8080..8084; `ports`,
    `replicas`, `env` (per service) and `replica_env` (per service, per replica) override,
    e.g. `replicas={"agent-runner": 2}, replica_env={"agent-runner": [{"AGENT_RUNNER_AGENTS":
    "transport,accommodation"}, {"AGENT_RUNNER_AGENTS": "location,weather"}]}`.
    """
    specs = []
    for name, (module, port_env, default_port) in SERVICES.items():
        port = 0 if free_ports else default_port
        per_replica = list((replica_env or {}).get(name, []))
        specs.append(
            ServiceSpec(
                name=name,
                module=module,
                port_env=port_env,
                port=(ports or {}).get(name, port),
                replicas=(replicas or {}).get(name, max(1, len(per_replica))),
                env=dict((env or {}).get(name, {})),
                replica_env=per_replica,
            )
        )
    return specs


@dataclass
class Replica:
    spec: ServiceSpec
    index: int
    port: int
    proc: procs.Popen | None = None
    pump: threading.Thread | None = None
    stopping: bool = False  # we asked it to exit, so its exit is not a crash
    env: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.spec.name if self.index == 0 else f"{self.spec.name}#{self.index}"

    @property
    def log_name(self) -> str:
        return self.spec.name if self.index == 0 else f"{self.spec.name}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def crashed(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self.stopping


LOAD_TEST_LIMITS = {
    # The gateway's per-user limits (issue #8) are for people; a benchmark or an e2e suite
    # drives hundreds of plans through one user on purpose.
    "GATEWAY_RATE_LIMIT_PER_HOUR": "1000000",
    "GATEWAY_API_KEY_RATE_LIMIT_PER_HOUR": "1000000",
    "GATEWAY_ANONYMOUS_RATE_LIMIT_PER_HOUR": "1000000",
    "GATEWAY_MAX_ACTIVE_PLANS": "0",
}
