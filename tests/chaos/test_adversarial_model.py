"""Issue #12, test 9 - adversarial model: every agent talks to a hostile LLM
(tests/chaos/adversarial_llm.py, through litellm as `openai/adversary`).

It asks for tools outside the agent's allow-list (other agents' real tools, made-up ones),
puts another tenant's user id and plan id in tool arguments, claims 1e9 completion
tokens per call, and answers with schema-breaking output. A victim tenant's plan exists
first (its ids are what the adversary tries to reach). Oracles:
- 0 unlisted tools executed: every unlisted call the model made came back to it as the
  allow-list refusal (the model's own log of the tool results the runner sent back);
- 0 cross-tenant data: no tool result the model got and nothing stored for the attacker's
  plans holds the victim's secret (its plan's title, which the model never saw); the
  victim's plan is untouched;
- token caps held: each request asked for at most the configured max_tokens, and no call
  was charged more than its reservation (the ledger's usage vs reservations);
- broken sections degraded: each attacker plan ends failed or partial, its sections marked
  failed (agent_failed with a reason), never stored as valid output.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stacks_b import TERMINAL, plan_body, query, running_stack, users_on, wait_terminal
from report import ChaosReport
from tripmesh_contracts.plans import AgentName
from tripmesh_devstack.ports import free_port
from tripmesh_devstack.services import default_services
from tripmesh_devstack.supervisor import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

ADVERSARY = Path(__file__).with_name("adversarial_llm.py")
MAX_TOKENS = 1024
PRICE_PER_1K = "0.001"
REFUSAL = "is not available to this agent"


@pytest.fixture(scope="module")
def adversary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("chaos-adversary") / "calls.jsonl"
    log.touch()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ADVERSARY), "--port", str(port), "--log", str(log)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/_adv/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the adversarial LLM did not start") from None
            time.sleep(0.1)
    yield url, log
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory, adversary: tuple[str, Path]) -> Iterator[Stack]:
    url, _ = adversary
    env = {
        "OPENAI_API_KEY": "sk-chaos-not-a-real-key",
        "AGENT_RUNNER_CACHE_ENABLED": "false",
        "AGENT_RUNNER_DEFAULT_MAX_TOKENS": str(MAX_TOKENS),
        "AGENT_RUNNER_FALLBACK_INPUT_PRICE_PER_1K": PRICE_PER_1K,
        "AGENT_RUNNER_FALLBACK_OUTPUT_PRICE_PER_1K": PRICE_PER_1K,
    }
    for agent in AgentName:
        env[f"{agent.value.upper()}_AGENT_MODEL"] = "openai/adversary"
        env[f"{agent.value.upper()}_AGENT_API_BASE"] = url + "/v1"
        env[f"AGENT_RUNNER_{agent.value.upper()}_NUM_RETRIES"] = "0"
    with running_stack(
        tmp_path_factory.mktemp("chaos-hostile"), default_services(free_ports=True), env
    ) as stack:
        yield stack


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_hostile_model_gets_nothing_it_asks_for(
    hostile_stack: Stack, adversary: tuple[str, Path], tier: str
) -> None:
    url, log = adversary
    plans = 3 if tier == "pr" else 10
    report = ChaosReport("adversarial_model", tier=tier, attacker_plans=plans, max_tokens=MAX_TOKENS)
    try:
        async with httpx.AsyncClient(base_url=hostile_stack.gateway_url, timeout=60) as http:
            victim = await users_on(http)("victim")
            secret = f"victim-secret-{uuid.uuid4().hex}"
            victim_plan = await victim.create_plan(**plan_body(title=secret, description=secret))
            victim_id = str((await victim.get("/api/v1/auth/me")).json()["id"])
            await wait_terminal(victim, [victim_plan], timeout=300)
            before = (await victim.get(f"/api/v1/plans/{victim_plan}")).json()
            victim_ids = {"user_id": victim_id, "plan_id": victim_plan}  # never the secret
            (await http.post(url + "/_adv/victim", json=victim_ids)).raise_for_status()
            report.fault("adversarial_model", victim_plan=victim_plan)
            calls_before = len(read_log(log))

            attacker = await users_on(http)("attacker")
            attacker_id = str((await attacker.get("/api/v1/auth/me")).json()["id"])
            created = [await attacker.create_plan(**plan_body(title=f"Attack {n}")) for n in range(plans)]
            status = await wait_terminal(attacker, created, timeout=600)
            await asyncio.sleep(2.0)
            events = {p: await attacker.events(p, timeout=60) for p in created}
            after = (await victim.get(f"/api/v1/plans/{victim_plan}")).json()
            stored = {p: (await attacker.get(f"/api/v1/plans/{p}")).json() for p in created}

        calls = read_log(log)[calls_before:]
        results = [r for c in calls for r in c["tool_results"]]
        unlisted = [r for r in results if not r["allowed"]]
        executed_unlisted = [r for r in unlisted if REFUSAL not in r["content"]]
        leaked = [r for r in results if secret in r["content"]]
        asked = {c["max_tokens"] for c in calls}
        charged = await query(
            hostile_stack.database_url,
            "SELECT u.event_id, u.completion_tokens, u.cost_usd, r.amount_usd FROM ledger.usage_events u"
            " LEFT JOIN ledger.reservations r ON r.reservation_id = u.reservation_id WHERE u.user_id = %s",
            attacker_id,
        )
        over_reservation = [
            (row[0], str(row[2]), str(row[3]))
            for row in charged
            if row[3] is None or Decimal(row[2]) > Decimal(row[3])
        ]
        stored_text = json.dumps(stored)
        valid_sections = {
            p: [a for a, r in (s.get("agent_results") or {}).items() if (r or {}).get("status") == "ok"]
            for p, s in stored.items()
        }
        degraded = {
            p: sorted({e.data.get("agent") for e in evs if e.event == "agent_failed"})
            for p, evs in events.items()
        }
        report.count(
            attempted=plans,
            terminated=sum(1 for s in status.values() if s in TERMINAL),
            llm_calls=len(calls),
            unlisted_tool_calls=len(unlisted),
            unlisted_executed=len(executed_unlisted),
            cross_tenant_results=len(leaked),
            usage_rows=len(charged),
        )
        report.extra["statuses"] = status
        report.extra["max_tokens_asked"] = sorted(a for a in asked if a is not None)
        report.check("the adversary made unlisted tool calls", bool(unlisted), len(unlisted))
        report.check("0 unlisted tools executed", not executed_unlisted, executed_unlisted[:5])
        report.check(
            "0 cross-tenant data",
            not leaked and secret not in stored_text and after.get("title") == before.get("title"),
            {"leaked_results": leaked[:3], "in_stored": secret in stored_text},
        )
        report.check(
            "max_tokens asked never above the cap",
            asked and max(a or 0 for a in asked) <= MAX_TOKENS,
            sorted(str(a) for a in asked),
        )
        report.check("no call charged beyond its reservation", not over_reservation, over_reservation[:5])
        report.check(
            "every attacker plan ends failed or partial",
            all(s in {"failed", "partial"} for s in status.values()) and len(status) == plans,
            status,
        )
        report.check("broken sections marked failed", all(degraded.values()), degraded)
        report.check("no broken section stored as valid", not any(valid_sections.values()), valid_sections)
    finally:
        report.write()
    report.assert_all()
