"""Stacks for helper B's chaos tests (poison, planner crash, concurrent results, budget race,
adversarial model, ids and subjects), started exactly as `make up` starts them.

Each module starts the stacks it needs (module-scoped), so two modules' stacks never compete
for the two cores; everything here is plain functions the modules' fixtures call.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tripmesh_devstack.services import LOAD_TEST_LIMITS, ServiceSpec, default_services
from tripmesh_devstack.supervisor import Stack

# the e2e suite's public-API client (users, plans, SSE) is the one the battery drives
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from client import TERMINAL, User, plan_body, users_on

__all__ = [
    "TERMINAL",
    "User",
    "only",
    "plan_body",
    "query",
    "running_stack",
    "users_on",
    "wait_terminal",
]


def only(*names: str, **kw: Any) -> list[ServiceSpec]:
    """The default services (free ports) restricted to `names`, `kw` as for default_services."""
    return [spec for spec in default_services(free_ports=True, **kw) if spec.name in names]


@contextlib.contextmanager
def running_stack(
    data: Path, services: Sequence[ServiceSpec], env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A started stack (logs in `data`/stack-console.log), stopped on exit."""
    log = (data / "stack-console.log").open("w")
    stack = Stack(
        data / "data",
        services,
        console=log,
        env={"LOG_FORMAT": "json", **LOAD_TEST_LIMITS, **(env or {})},
        ready_timeout=420.0,  # a liveness bound: starting took ~3 min with other stacks running
    )
    try:
        stack.start()
    except Exception:
        log.flush()
        print((data / "stack-console.log").read_text()[-8000:])
        log.close()
        raise
    try:
        yield stack
    finally:
        stack.stop()
        log.close()


async def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(sql, params)
        return list(await cur.fetchall())


async def wait_terminal(user: User, plan_ids: Sequence[str], timeout: float) -> dict[str, str]:
    """Each plan's status once all are terminal or `timeout` passed (liveness bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status: dict[str, str] = {}
    pending = list(plan_ids)
    while pending and loop.time() < deadline:
        for plan_id in list(pending):
            r = await user.get(f"/api/v1/plans/{plan_id}")
            if r.status_code == 200:
                status[plan_id] = r.json()["status"]
                if status[plan_id] in TERMINAL:
                    pending.remove(plan_id)
        if pending:
            await asyncio.sleep(1.0)
    return status


async def new_user(http: httpx.AsyncClient, name: str) -> User:
    return await users_on(http)(name)
