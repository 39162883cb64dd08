"""Issue #3: the whole path, over real NATS / Postgres / Qdrant storage, two users.

The stack is started exactly as `make up` starts it (tripmesh_devstack's Stack: embedded
servers, five services as separate processes). Each numbered step of the issue is asserted.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from client import User, plan_body

pytestmark = pytest.mark.e2e

PLAN_COMMANDS = "PLAN_COMMANDS"


async def stream_messages(js: Any, name: str) -> int:
    info = await js.stream_info(name)
    return int(info.state.messages) + int(info.state.first_seq and 0)


async def commands_published(js: Any) -> int:
    """Total ever published to PLAN_COMMANDS (work-queue: messages leave once consumed)."""
    info = await js.stream_info(PLAN_COMMANDS)
    return int(info.state.last_seq)


async def test_walking_system(stack: Any, http: httpx.AsyncClient, js: Any, record_timing: Any) -> None:
    ana = User(http, "ana@example.com", "ana", "correct-horse-battery-1")
    bob = User(http, "Bob@Example.com", "bob", "another-long-passphrase-2")

    # 1. signup, login, me
    await ana.signup_and_login()
    await bob.signup_and_login()
    me = await ana.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["email"] == "ana@example.com"
    assert ana.user_id != bob.user_id

    # 2. create a plan -> 202, published; Idempotency-Key returns the same plan
    started = time.monotonic()
    r = await ana.post("/api/v1/plans", json=plan_body(), headers={"Idempotency-Key": "ana-1"})
    assert r.status_code == 202, r.text
    plan = r.json()
    assert plan["status"] == "processing" and plan["version"] == 1
    plan_id = plan["id"]
    again = await ana.post("/api/v1/plans", json=plan_body(), headers={"Idempotency-Key": "ana-1"})
    assert again.status_code in (200, 202) and again.json()["id"] == plan_id

    bob_plan = await bob.post(
        "/api/v1/plans",
        json=plan_body(
            title="Fjord hiking in Norway",
            description="Mountain walks and ferries",
            destinations=["Bergen, NO", "Oslo"],
            origin="Berlin",
            budget_currency="NOK",
            budget_total=60000,
            preferences={"interests": ["hiking", "nature"]},
        ),
    )
    assert bob_plan.status_code == 202, bob_plan.text
    bob_plan_id = bob_plan.json()["id"]

    # 3-6. the planner, runners and SSE: read the stream to the terminal event
    events = await ana.events(plan_id)
    elapsed = time.monotonic() - started
    record_timing("post_to_final_sse_event_seconds", elapsed)
    kinds = [e.event for e in events]
    assert kinds[0] == "accepted", kinds
    assert kinds[-1] == "completed", kinds
    assert "version_created" in kinds
    stages = [e.data["stage"] for e in events if e.event == "stage_started"]
    assert stages[:4] == ["intake", "research", "options", "budget"] or stages[:3] == [
        "research",
        "options",
        "budget",
    ], stages
    assert "planning" in stages
    done_agents = {e.data["agent"] for e in events if e.event == "agent_completed"}
    assert done_agents == {
        "location",
        "weather",
        "transport",
        "accommodation",
        "activity",
        "budget",
        "planning",
    }
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # 6b. a late client resuming with Last-Event-ID gets exactly the rest
    cut = events[len(events) // 2]
    rest = await ana.events(plan_id, last_event_id=cut.id)
    assert [e.id for e in rest] == [e.id for e in events if int(e.id) > int(cut.id)]

    # 7. the plan: one itinerary day per date, each in a requested destination
    r = await ana.get(f"/api/v1/plans/{plan_id}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "completed" and got["version"] == 1
    days = got["plan_data"]["itinerary"]
    start, end = date(2027, 5, 1), date(2027, 5, 6)
    expected = [(start + timedelta(d)).isoformat() for d in range((end - start).days + 1)]
    assert [d["date"] for d in days] == expected
    assert {d["destination"] for d in days} <= {"Lisbon", "Porto"}
    assert {d["destination"] for d in days} == {"Lisbon", "Porto"}
    sections = got["plan_data"]["sections"]
    assert set(sections) >= {"location", "weather", "transport", "accommodation", "activity", "budget"}
    listing = await ana.get("/api/v1/plans", params={"limit": 10})
    assert listing.status_code == 200
    assert [p["id"] for p in listing.json()["items"]] == [plan_id]

    # 8. costs: the ledger ingested one usage event per LLM call, by agent
    summary: dict[str, Any] = {}
    for _ in range(100):
        r = await ana.get("/api/v1/costs/summary", params={"plan_id": plan_id})
        assert r.status_code == 200, r.text
        summary = r.json()
        if {b["key"] for b in summary["by_agent"]} >= {"planning", "location"}:
            break
        await asyncio.sleep(0.2)
    assert {b["key"] for b in summary["by_agent"]} == set(done_agents)
    assert summary["calls"] >= 7

    # 9. similar plans: own plans only (bob's plan is never returned)
    await bob.events(bob_plan_id)
    second = await ana.post(
        "/api/v1/plans",
        json=plan_body(title="Seafood weekend in Lisbon", destinations=["Lisbon"], end_date="2027-05-03"),
    )
    second_id = second.json()["id"]
    await ana.events(second_id)
    hits: list[dict[str, Any]] = []
    for _ in range(100):
        r = await ana.get(f"/api/v1/plans/{plan_id}/similar", params={"limit": 5})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"] if isinstance(r.json(), dict) else r.json()
        if hits:
            break
        await asyncio.sleep(0.2)
    assert [h["plan_id"] for h in hits] == [second_id]

    # isolation: bob sees none of ana's things - 404, not 403
    for path in (
        f"/api/v1/plans/{plan_id}",
        f"/api/v1/plans/{plan_id}/events",
        f"/api/v1/plans/{plan_id}/similar",
        f"/api/v1/plans/{plan_id}/versions",
    ):
        r = await bob.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await bob.get("/api/v1/costs/summary", params={"plan_id": plan_id})
    assert r.status_code == 404
    bob_list = await bob.get("/api/v1/plans")
    assert [p["id"] for p in bob_list.json()["items"]] == [bob_plan_id]

    # bad input: a clear problem+json naming the field, and nothing published
    before = await commands_published(js)
    bad_cases = [
        (plan_body(destinations=["Lisbon", "Atlantisxyzzy"]), "destinations"),
        (plan_body(start_date="2027-05-06", end_date="2027-05-01"), "end_date"),
        (plan_body(budget_total=-5), "budget_total"),
    ]
    for body, field in bad_cases:
        r = await ana.post("/api/v1/plans", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in r.text
    r = await ana.post("/api/v1/plans", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await http.post("/api/v1/plans", json=plan_body())
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert await commands_published(js) == before
