"""Issue #10 end to end, through the real `tripctl` console script on the stack `make up` starts.

A poison usage event lands in the DLQ, an operator sees it with
`tripctl dlq ls` / `dlq show`, fixes the body and replays it - twice - and the ledger counts
the event exactly once (replay is safe to repeat because the ledger is idempotent on the
event id). Also: `doctor` finds the running stack healthy, and `plan submit --watch`, `plan
show` and `plan events` work through the gateway with a user's token."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from client import TERMINAL, UserFactory, plan_body
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import UsageEvent
from tripmesh_contracts.streams import LEDGER_USAGE
from tripmesh_devstack.supervisor import Stack
from tripmesh_tripctl.testing import Ran, run_tripctl

pytestmark = pytest.mark.e2e

COST = Decimal("0.01234567")


def operator_env(stack: Stack) -> dict[str, str]:
    """What an operator beside the stack has: the URLs `make up` prints (the operator's NATS
    identity is in `stack.nats_url`)."""
    return {
        "NATS_URL": stack.nats_url,
        "DATABASE_URL": stack.database_url,
        "TRIPMESH_DATA_DIR": str(stack.data_dir),
        "TRIPCTL_GATEWAY_URL": stack.gateway_url,
    }


async def eventually(probe: Any, what: str, stack: Stack, timeout: float = 90.0) -> Any:
    """Poll `probe()` until it returns something truthy (a liveness bound, not a speed test);
    on failure, say where the usage consumer stands and what the ledger last logged."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            status = (await run_tripctl("bus", "status", "--json", env=operator_env(stack))).stdout
            usage = [c for c in json.loads(status)["consumers"] if c["stream"] == "USAGE"]
            log = stack.log_path("cost-ledger").read_text()[-3000:]
            raise AssertionError(f"never happened: {what}\nUSAGE consumers: {usage}\nledger log:\n{log}")
        await asyncio.sleep(0.5)


async def test_poison_usage_event_is_shown_fixed_replayed_twice_and_counted_once(
    stack: Stack, js: Any, tmp_path: Path
) -> None:
    env = operator_env(stack)
    user = f"dlq{uuid.uuid4().hex[:12]}"

    async def tripctl(*args: str) -> Ran:
        return await run_tripctl(*args, env=env)

    event = UsageEvent(
        user_id=user,
        agent="weather",
        model="local/stub",
        provider="local",
        prompt_tokens=120,
        completion_tokens=30,
        cost_usd=COST,
    )
    good = event.model_dump(mode="json")
    poison = {k: v for k, v in good.items() if k != "model"}  # a producer bug: no model
    ack = await js.publish(
        subjects.usage(user), json.dumps(poison).encode(), headers={"Nats-Msg-Id": event.id}
    )
    assert ack.stream == "USAGE"

    # 1. it lands in the DLQ, and `dlq ls` shows why
    async def listed() -> list[dict[str, Any]]:
        return list((await tripctl("dlq", "ls", "--subject", subjects.usage(user), "--json")).json())

    [letter] = await eventually(listed, "the poison event in the DLQ", stack)
    assert letter["original_subject"] == subjects.usage(user)
    assert letter["kind"] == "undecodable"
    assert "model" in letter["error"]
    assert letter["consumer"] == LEDGER_USAGE.durable
    assert letter["original_stream"] == "USAGE" and letter["original_seq"] == ack.seq
    assert letter["deliveries"] == 1

    # 2. `dlq show` has the body as it was published, and the human table says the same
    shown = (await tripctl("dlq", "show", str(letter["id"]), "--json")).json()
    assert shown["body"] == poison
    assert "Nats-Msg-Id" not in shown["headers"]
    table = await tripctl("dlq", "show", str(letter["id"]))
    assert table.code == 0 and "undecodable" in table.stdout and subjects.usage(user) in table.stdout

    # 3. fix the body and replay it, keeping the entry; then replay it again (which removes it)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(good))
    first = (
        await tripctl("dlq", "replay", str(letter["id"]), "--body", str(fixed), "--keep", "--json")
    ).json()
    second = (await tripctl("dlq", "replay", str(letter["id"]), "--body", str(fixed), "--json")).json()
    for replayed, removed in ((first[0], False), (second[0], True)):
        assert replayed["subject"] == subjects.usage(user) and replayed["stream"] == "USAGE"
        assert replayed["corrected"] is True and replayed["removed"] is removed
        assert replayed["duplicate"] is False  # a fresh Nats-Msg-Id: both reach the ledger
    assert first[0]["stream_seq"] < second[0]["stream_seq"]

    # 4. the ledger has consumed both replays (its consumer is idle past them) ...
    async def consumed() -> bool:
        status = (await tripctl("bus", "status", "--json")).json()
        [usage] = [c for c in status["consumers"] if c["name"] == LEDGER_USAGE.durable]
        stream = next(s for s in status["streams"] if s["name"] == "USAGE")
        summary = (await tripctl("ledger", "summary", "--user", user, "--json")).json()
        return bool(
            summary["calls"] >= 1
            and usage["pending"] == 0
            and usage["ack_pending"] == 0
            and stream["last_seq"] >= second[0]["stream_seq"]
        )

    await eventually(consumed, "the ledger consuming both replays", stack)

    # ... and counts the event exactly once
    summary = (await tripctl("ledger", "summary", "--user", user, "--json")).json()
    assert summary["calls"] == 1
    assert Decimal(summary["total_cost_usd"]) == COST
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (120, 30)
    assert [b["key"] for b in summary["by_agent"]] == ["weather"]

    # 5. the DLQ entry is gone; replaying it once more is refused, not silently re-sent
    assert await listed() == []
    again = await tripctl("dlq", "replay", str(letter["id"]))
    assert again.code == 1 and "no dead letter" in again.stderr


async def test_doctor_finds_the_running_stack_healthy(stack: Stack) -> None:
    """Streams, consumers, schemas and collections as `make up` leaves them: nothing to fix."""
    ran = await run_tripctl("doctor", "--json", env=operator_env(stack))
    report = json.loads(ran.stdout)
    assert ran.code == 0 and report["ok"], [c for c in report["checks"] if not c["ok"]]
    areas = {c["area"] for c in report["checks"]}
    assert areas == {"nats", "postgres", "qdrant"}


async def test_plan_submit_watch_show_and_events(stack: Stack, new_user: UserFactory) -> None:
    user = await new_user("operator")
    env = {**operator_env(stack), "TRIPCTL_TOKEN": user.token}
    request = json.dumps(plan_body(title="tripctl trip"))
    submitted = (
        await run_tripctl("plan", "submit", request, "--destination", "Lisbon", "--watch", "--json", env=env)
    ).json()
    plan_id = submitted["id"]
    kinds = [e["event"] for e in submitted["events"]]
    assert kinds[0] == "accepted" and kinds[-1] in TERMINAL
    assert submitted["plan"]["status"] == kinds[-1]
    assert submitted["plan"]["destinations"] == ["Lisbon"]  # the flag overrode the JSON

    shown = (await run_tripctl("plan", "show", plan_id, "--json", env=env)).json()
    assert shown["id"] == plan_id and shown["status"] in TERMINAL
    assert [v["version"] for v in shown["versions"]] == [1]
    table = await run_tripctl("plan", "show", plan_id, env=env)
    assert table.code == 0 and "tripctl trip" in table.stdout

    lines = (await run_tripctl("plan", "events", plan_id, "--json", env=env)).stdout.splitlines()
    assert [json.loads(line)["event"] for line in lines] == kinds

    refused = await run_tripctl("plan", "show", plan_id, env={**env, "TRIPCTL_TOKEN": "not-a-token"})
    assert refused.code == 1 and "401" in refused.stderr
