"""What the bench measures, behind one interface: a system serving tripmesh's public API.

`TripmeshStack` is the real stack as `make up` starts it (tripmesh_devstack's Stack: embedded
NATS and Postgres, local Qdrant storage in vector-sync, the five services as processes). The
control of issue #13 (the same planner graph, agents and LLM server in one process behind the
same API, bench/stack/control) implements the same four members; `--systems tripmesh,control`
measures every point for both in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TextIO

from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services
from tripmesh_devstack.supervisor import Stack

from bench.stack.control.system import ControlSystem
from bench.stack.llm_server import LlmServer

BENCH_SPEND_CAPS = {
    # The bench's users sign up on the free tier ($1 a day), and a whole `make bench` runs
    # ~160 plans per user: the cap must not decide a point. The caps are raised, not
    # switched off: the runner still reserves every LLM call against them in the ledger, so
    # the measured work is the product's.
    "COST_LEDGER_FREE_DAILY_CAP_USD": "1000000",
    "COST_LEDGER_FREE_MONTHLY_CAP_USD": "1000000",
}


class System(Protocol):
    name: str

    @property
    def url(self) -> str:
        """The public API's base URL (the gateway)."""
        ...

    def start(self) -> dict[str, float]:
        """Start until every readiness probe answers 200: {"cold": s[, "warm": s]}."""
        ...

    def pids(self) -> dict[str, int | None]:
        """The processes to account CPU and RSS to, by name (children are included)."""
        ...

    def stop(self) -> None: ...


class TripmeshStack:
    name = "tripmesh"

    def __init__(
        self,
        workdir: Path,
        llm: LlmServer,
        *,
        warm_restart: bool = True,
        runner_concurrency: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.warm_restart = warm_restart
        runner_env = llm.agent_env()
        if runner_concurrency is not None:
            runner_env["AGENT_RUNNER_CONCURRENCY"] = str(runner_concurrency)
        services = default_services(free_ports=True, env={"agent-runner": runner_env})
        self.console: TextIO = (workdir / "stack-console.log").open("w")
        env = {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", **LOAD_TEST_LIMITS, **BENCH_SPEND_CAPS}
        self.stack = Stack(workdir / "data", services, console=self.console, env=env)

    @property
    def url(self) -> str:
        return self.stack.gateway_url

    def start(self) -> dict[str, float]:
        """Cold: a fresh data directory (initdb, streams, migrations); warm: the same stack
        stopped and started again on its data, as a second `make up` does."""
        times = {"cold": _timed(self.stack.start)}
        if self.warm_restart:
            self.stack.stop()
            times["warm"] = _timed(self.stack.start)
        return times

    def pids(self) -> dict[str, int | None]:
        pids = {r.tag: self.stack.pid(r.spec.name, r.index) for r in self.stack.all_replicas()}
        pids["nats"] = self.stack.nats.pid if self.stack.nats else None
        pids["postgres"] = self.stack.postgres.pid if self.stack.postgres else None
        return pids

    def stop(self) -> None:
        try:
            self.stack.stop()
        finally:
            self.console.close()


def _timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


SystemFactory = Callable[[Path, LlmServer, "RunOptions"], System]


class RunOptions(Protocol):
    warm_restart: bool
    runner_concurrency: int | None


def tripmesh(workdir: Path, llm: LlmServer, options: RunOptions) -> System:
    return TripmeshStack(
        workdir, llm, warm_restart=options.warm_restart, runner_concurrency=options.runner_concurrency
    )


def control(workdir: Path, llm: LlmServer, options: RunOptions) -> System:
    return ControlSystem(workdir, llm, warm_restart=options.warm_restart)


SYSTEMS: dict[str, SystemFactory] = {"tripmesh": tripmesh, "control": control}
"""`--systems` names."""
