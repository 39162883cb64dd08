"""e2e fixtures: the real stack, started exactly as `make up` starts it (tripmesh_devstack).

The stack is shared by the tests of one session (starting it costs tens of seconds on two
cores); each test uses its own users, so tests stay independent.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from tripmesh_devstack.services import LOAD_TEST_LIMITS, ServiceSpec, default_services
from tripmesh_devstack.supervisor import Stack

sys.path.insert(0, str(Path(__file__).parent))

from client import UserFactory, users_on  # importable once the directory is on the path

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "e2e"

# The gateway's rate limits and active-plan cap (services/gateway/README.md, Limits) are
# sized for people; these suites create hundreds of plans per user from one address.
E2E_LIMITS = LOAD_TEST_LIMITS


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("tripmesh-e2e")
    log = (data / "stack-console.log").open("w")
    s = Stack(
        data / "data",
        default_services(free_ports=True),
        console=log,
        env={"LOG_FORMAT": "json", **E2E_LIMITS},
    )
    try:
        s.start()
    except Exception:
        log.flush()
        print((data / "stack-console.log").read_text()[-8000:])
        raise
    yield s
    s.stop()
    log.close()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture
async def js(stack: Stack) -> AsyncIterator[Any]:
    nc = await nats.connect(stack.nats_url)
    yield nc.jetstream()
    await nc.close()


@pytest.fixture(scope="session")
def record_timing() -> Iterator[Callable[[str, float], None]]:
    """Timings observed by e2e tests: printed and written to reports/e2e/timings.json.
    They are reports, never assertions (speed targets live in `make bench`)."""
    seen: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        seen.setdefault(name, []).append(round(seconds, 4))

    yield record
    if seen:
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / "timings.json").write_text(
            json.dumps(
                {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timings": seen}, indent=2
            )
        )
        print(f"\ne2e timings: {seen}")


StackFactory = Callable[..., Stack]


@pytest.fixture(scope="module")
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """Stacks of a module's own (other replicas or settings than the session's `stack`):
    `stack_factory(name, services, env={...})` starts one; all stop when the module ends, so
    two modules' stacks never compete for the two cores."""
    started: list[tuple[Stack, Any]] = []

    def start(name: str, services: Sequence[ServiceSpec], env: dict[str, str] | None = None) -> Stack:
        data = tmp_path_factory.mktemp(f"tripmesh-e2e-{name}")
        log = (data / "stack-console.log").open("w")
        s = Stack(
            data / "data", services, console=log, env={"LOG_FORMAT": "json", **E2E_LIMITS, **(env or {})}
        )
        try:
            s.start()
        except Exception:
            log.flush()
            print((data / "stack-console.log").read_text()[-8000:])
            log.close()
            raise
        started.append((s, log))
        return s

    yield start
    for s, log in reversed(started):
        s.stop()
        log.close()


@pytest.fixture
def new_user(http: httpx.AsyncClient) -> UserFactory:
    """Users on the session's `stack`."""
    return users_on(http)
