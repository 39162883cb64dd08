"""The battery's harness: the stack as `make up` starts it, the test LLM, load and the stores.

- `LlmProcess`: the agent-runner's OpenAI stub as its own process (seeded latency range, an
  fsync'd invoice file), every agent routed to it through litellm.
- `start_chaos_stack`: devstack's `Stack` with that LLM, limits for load, prices and caps.
- `Load`: users and plans through the public API; plan states and latencies read from the
  planner's table (polling hundreds of plans over HTTP would load the two cores more than
  the faults do).
- Store readers for oracles: ledger rows and totals, the USAGE stream, consumer and DLQ
  state, `published` log lines, /metrics counters.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
from reconcile import expected_ledger
from tripmesh_contracts.plans import AgentName
from tripmesh_devstack.services import LOAD_TEST_LIMITS, ServiceSpec
from tripmesh_devstack.supervisor import Stack

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a directory of scripts, importable from the root

from bench.stack.llm_server import LlmServer  # noqa: E402

MODEL = "openai/stub"
TERMINAL = ("completed", "partial", "failed", "cancelled")
OK_TERMINAL = ("completed", "partial")

# Caps far above what a run spends: the battery measures faults, not budget refusals (test 8
# owns those). Prices are small but not 0, so the ledger's totals are real money to reconcile.
LEDGER_ENV = {
    f"COST_LEDGER_{tier.upper()}_{period}_CAP_USD": "1000000"
    for tier in ("free", "basic", "premium", "enterprise")
    for period in ("DAILY", "MONTHLY")
} | {"COST_LEDGER_PLAN_CAP_USD": "1000"}


class LlmProcess(LlmServer):
    """The OpenAI stub as a process, launched by the bench's launcher (bench/stack/llm_server.py)
    with a seeded latency range, an invoice and a log; plus the battery's fault controls."""

    def __init__(self, workdir: Path, latency_ms: str = "200-3000", seed: int = 12) -> None:
        super().__init__(
            latency_ms, seed=seed, invoice_path=workdir / "invoice.jsonl", log_path=workdir / "llm-stub.log"
        )

    def start(self, timeout: float = 240.0) -> None:
        super().start(timeout)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.base_url + "/_stub/health", timeout=5).json())

    def script(self, *faults: str, agent: str | None = None, latency_ms: float | None = None) -> None:
        body: dict[str, Any] = {"faults": list(faults), "agent": agent}
        if latency_ms is not None:
            body["latency_ms"] = latency_ms
        httpx.post(self.base_url + "/_stub/faults", json=body, timeout=5).raise_for_status()

    def release(self) -> None:
        httpx.post(self.base_url + "/_stub/release", timeout=5).raise_for_status()

    def invoice(self) -> list[dict[str, Any]]:
        path = self.invoice_path
        if path is None or not path.exists():
            return []
        out = []
        for raw in path.read_text().splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a torn last line
        return out

    def agent_env(self) -> dict[str, str]:
        """Every agent on this server through litellm, the shared LLM cache off (identical
        plans would be served from it), a small fallback price (litellm cannot price it)."""
        env = {
            "OPENAI_API_KEY": "sk-chaos-not-a-real-key",
            "AGENT_RUNNER_CACHE_ENABLED": "false",
            "AGENT_RUNNER_FALLBACK_INPUT_PRICE_PER_1K": "0.0005",
            "AGENT_RUNNER_FALLBACK_OUTPUT_PRICE_PER_1K": "0.0015",
        }
        for agent in AgentName:
            env[f"{agent.value.upper()}_AGENT_MODEL"] = MODEL
            env[f"{agent.value.upper()}_AGENT_API_BASE"] = self.api_base
        return env


def start_chaos_stack(workdir: Path, services: list[ServiceSpec], env: dict[str, str] | None = None) -> Stack:
    """The stack (its console to workdir/console.log); started, or stopped again on failure."""
    console = (workdir / "console.log").open("w")
    stack = Stack(
        workdir / "data",
        services,
        console=console,
        env={"LOG_FORMAT": "json", **LOAD_TEST_LIMITS, **LEDGER_ENV, **(env or {})},
        ready_timeout=420.0,  # a liveness bound: the battery shares two cores with other suites
    )
    try:
        stack.start()
    except Exception:
        console.flush()
        print((workdir / "console.log").read_text()[-8000:])
        raise
    return stack


# -- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """Users and plans through the public API; states from the planner's `plans` table."""

    stack: Stack
    users: list[tuple[str, str]] = field(default_factory=list)  # (user id, token)
    plans: dict[str, float] = field(default_factory=dict)  # plan id -> POST accepted (epoch s)
    refused: int = 0

    async def sign_up(self, count: int) -> None:
        async with httpx.AsyncClient(base_url=self.stack.gateway_url, timeout=60) as http:
            for _ in range(count):
                tag = uuid.uuid4().hex[:10]
                email, password = f"chaos-{tag}@example.com", "a-long-enough-passphrase"
                body = {"email": email, "username": f"chaos_{tag}", "password": password,
                        "password_confirm": password}  # fmt: skip
                r = await http.post("/api/v1/auth/signup", json=body)
                assert r.status_code == 201, r.text
                r = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
                assert r.status_code == 200, r.text
                self.users.append((r.json().get("user_id", ""), r.json()["access_token"]))

    async def submit(self, count: int, *, concurrency: int = 4, spacing: float = 0.0) -> None:
        """POST `count` plans round-robin over the users (retrying refusals a broker or
        database outage causes: a client would retry them too)."""
        gate = asyncio.Semaphore(concurrency)
        start = len(self.plans)

        async def one(http: httpx.AsyncClient, n: int) -> None:
            _, token = self.users[n % len(self.users)]
            body = plan_body(n)
            async with gate:
                for _ in range(120):
                    try:
                        r = await http.post("/api/v1/plans", json=body,
                                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                        if r.status_code == 202:
                            self.plans[str(r.json()["id"])] = time.time()
                            return
                    except httpx.HTTPError:
                        pass
                    self.refused += 1
                    await asyncio.sleep(1.0)
                raise AssertionError(f"plan {n} never accepted (liveness bound)")

        async with httpx.AsyncClient(base_url=self.stack.gateway_url, timeout=30) as http:
            tasks = []
            for n in range(start, start + count):
                tasks.append(asyncio.create_task(one(http, n)))
                if spacing:
                    await asyncio.sleep(spacing)
            await asyncio.gather(*tasks)

    async def states(self) -> dict[str, tuple[str, float]]:
        """plan id -> (status, updated_at epoch s); {} while Postgres cannot answer."""
        try:
            async with await psycopg.AsyncConnection.connect(self.stack.database_url) as db:
                rows = await (
                    await db.execute(
                        "SELECT plan_id, status, extract(epoch FROM updated_at)::float8"
                        " FROM planner.plans WHERE plan_id = ANY(%s)",
                        (list(self.plans),),
                    )
                ).fetchall()
        except psycopg.Error:
            return {}
        return {str(p): (str(s), float(u)) for p, s, u in rows}

    async def wait_terminal(self, liveness: float) -> dict[str, tuple[str, float]]:
        """Until every plan is terminal or `liveness` seconds pass; the last states seen."""
        deadline = time.monotonic() + liveness
        seen: dict[str, tuple[str, float]] = {}
        while time.monotonic() < deadline:
            seen = await self.states() or seen
            if len(seen) == len(self.plans) and all(s in TERMINAL for s, _ in seen.values()):
                break
            await asyncio.sleep(2.0)
        return seen

    def latencies(self, states: dict[str, tuple[str, float]]) -> list[float]:
        """POST accepted -> terminal state stored, per terminal plan (seconds)."""
        return [max(0.0, u - self.plans[p]) for p, (s, u) in states.items() if s in TERMINAL]


def plan_body(n: int) -> dict[str, Any]:
    day = 1 + n % 20
    return {
        "title": f"Chaos trip {n}", "description": "Pastries, seafood and old towns",
        "destinations": ["Lisbon", "Porto"], "origin": "London",
        "start_date": f"2027-06-{day:02d}", "end_date": f"2027-06-{day + 3:02d}",
        "budget_total": 4000, "budget_currency": "EUR", "traveler_count": 2,
        "preferences": {"interests": ["food", "history"]}, "constraints": {},
    }  # fmt: skip


# -- the stores ------------------------------------------------------------------------------


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url + "/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def ledger_rows(stack: Stack) -> list[tuple[str, str | None, str | None, Decimal, bool]]:
    """(event id, job id, agent, cost, success) of every ledger row."""
    async with await psycopg.AsyncConnection.connect(stack.database_url) as db:
        rows = await (
            await db.execute("SELECT event_id, job_id, agent, cost_usd, success FROM ledger.usage_events")
        ).fetchall()
    return [(str(e), j, a, Decimal(c), bool(s)) for e, j, a, c, s in rows]


async def ledger_totals(stack: Stack) -> dict[str, Decimal]:
    """The running totals' sums (they must equal the rows' sum: no event counted twice)."""
    async with await psycopg.AsyncConnection.connect(stack.database_url) as db:
        out = {}
        for table in ("user_daily_totals", "plan_totals"):
            row = await (
                await db.execute(f"SELECT coalesce(sum(cost_usd), 0) FROM ledger.{table}")
            ).fetchone()
            out[table] = Decimal(row[0]) if row else Decimal(0)
    return out


async def usage_stream_events(stack: Stack) -> list[dict[str, Any]]:
    """Every message on the USAGE stream (limits retention: nothing is removed by consumers),
    read through an ephemeral ordered consumer."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info("USAGE")).state.messages
        sub = await js.subscribe("usage.>", ordered_consumer=True, stream="USAGE")
        out: list[dict[str, Any]] = []
        while len(out) < total:
            msg = await sub.next_msg(timeout=30)
            out.append(json.loads(msg.data))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def consumer_states(stack: Stack) -> dict[str, dict[str, Any]]:
    """durable -> pending, ack pending, redelivered (now), per consumer of every stream; the
    DLQ's message count under "DLQ"."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        out: dict[str, dict[str, Any]] = {}
        for stream in ("PLAN_COMMANDS", "AGENT_JOBS", "AGENT_RESULTS", "PLAN_CHANGES", "USAGE"):
            for info in await js.consumers_info(stream):
                if info.config.durable_name:
                    out[info.config.durable_name] = {
                        "pending": info.num_pending, "ack_pending": info.num_ack_pending,
                        "redelivered": info.num_redelivered,
                    }  # fmt: skip
        out["DLQ"] = {"messages": (await js.stream_info("DLQ")).state.messages}
        return out
    finally:
        await nc.close()


def ledger_matches_usage(
    rows: list[tuple[str, str | None, str | None, Decimal, bool]],
    events: list[dict[str, Any]],
    totals: dict[str, Decimal],
) -> tuple[bool, dict[str, Any]]:
    """0 duplicate ledger rows: the ledger holds exactly the distinct usage events of the
    USAGE stream (none twice, none missing; an estimate its real event replaced excepted) and
    its running totals add up to its rows."""
    ids = [r[0] for r in rows]
    distinct = set(expected_ledger(events))
    rows_total = sum((r[3] for r in rows), Decimal(0))
    ok = (
        len(ids) == len(set(ids))
        and set(ids) == distinct
        and totals["user_daily_totals"] == totals["plan_totals"] == rows_total
    )
    detail = {
        "rows": len(ids),
        "distinct_usage": len(distinct),
        "missing_from_ledger": len(distinct - set(ids)),
        "not_on_usage_stream": len(set(ids) - distinct),
        "rows_total": str(rows_total),
        "totals": {k: str(v) for k, v in totals.items()},
    }
    return ok, detail


def dead_letter_lines(stack: Stack, kind: str | None = None) -> list[dict[str, Any]]:
    """`dead_lettered` log lines of every replica (of one `error_kind`, if given)."""
    return [
        line
        for r in stack.all_replicas()
        for line in log_events(stack.log_path(r.spec.name, r.index), "dead_lettered")
        if kind is None or line.get("error_kind") == kind
    ]


def metric_sum(text: str, name: str) -> float:
    """Sum of a Prometheus counter's samples in a /metrics page (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def log_events(path: Path, event: str) -> list[dict[str, Any]]:
    """JSON log lines of one `event` in a service's log."""
    out = []
    needle = f'"event": "{event}"'
    for raw in path.read_text(errors="replace").splitlines():
        if needle in raw:
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return out


@dataclass
class ChaosEnv:
    """One stack of the battery and the LLM its agents call. (Here, not in conftest.py: the
    whole suite imports tests/e2e/conftest.py first, so `from conftest import` would find
    that one.)"""

    stack: Stack
    llm: LlmProcess
    workdir: Path


ChaosStackFactory = Callable[..., ChaosEnv]
