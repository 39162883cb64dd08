"""Issue #4 over the public API, on the session's stack (one planner, one runner, the offline
deterministic model): a normal plan, the budget loop, approval (approve and reject), two
revisions, and the double-request policy (reject 409, enqueue, interrupt).

Budgets are chosen from what the offline model itself prices (the `trip_costs` probe), never
hard-coded: round 0 prices the default (mid) tier, the planner's tighter constraints then
ask for the budget tier and fewer paid activities. A run that must stay active while the
test acts on it waits for approval (an impossible budget), which is deterministic where
"still processing" would be a race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from client import TERMINAL, SseEvent, User, UserFactory, users_on
from tripmesh_devstack.supervisor import Stack

pytestmark = pytest.mark.e2e

AGENTS = {"location", "weather", "transport", "accommodation", "activity", "budget", "planning"}
STAGES = ["intake", "research", "options", "budget", "planning"]
MAX_BUDGET_ROUNDS = 2  # the planner's default PLANNER_MAX_BUDGET_ROUNDS


def approval_or_end(event: SseEvent) -> bool:
    return event.event == "approval_required" or event.event in TERMINAL


def end_of_version(version: int) -> Callable[[SseEvent], bool]:
    return lambda e: e.event in TERMINAL and e.data["version"] == version


def rounds_of(events: list[SseEvent], stage: str) -> list[int]:
    return [
        e.data["data"]["round"] for e in events if e.event == "stage_started" and e.data["stage"] == stage
    ]


def lineage(versions: list[dict[str, Any]]) -> list[tuple[int, int | None, str]]:
    """(version, parent, status), oldest first (the API lists the newest first)."""
    return sorted((v["version"], v["parent_version"], v["status"]) for v in versions)


def kinds(events: list[SseEvent]) -> list[str]:
    return [e.event for e in events]


async def wait_for_approval(user: User, plan_id: str) -> list[SseEvent]:
    events: list[SseEvent] = await user.events_until(plan_id, approval_or_end)
    assert events[-1].event == "approval_required", kinds(events)
    return events


@dataclass(frozen=True)
class TripCosts:
    """What the offline model estimates for `plan_body()`'s trip, in its currency."""

    default_tier: Decimal
    """Round 0: the user's (default, mid) tier."""
    cheapest: Decimal
    """The last budget round: budget tier, no paid activities."""


@pytest.fixture(scope="module")
async def trip_costs(stack: Stack) -> AsyncIterator[TripCosts]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        user = await users_on(http)("probe")
        roomy = await user.create_plan(budget_total=1_000_000)
        impossible = await user.create_plan(budget_total=1)
        done = await user.events(roomy)
        assert done[-1].event == "completed", kinds(done)
        default_tier = (await user.plan(roomy))["plan_data"]["budget"]["total_estimated"]
        approval = (await wait_for_approval(user, impossible))[-1]
        cheapest = approval.data["data"]["budget"]["total_estimated"]
        r = await user.post(f"/api/v1/plans/{impossible}/decision", json={"approve": False})
        assert r.status_code == 202, r.text
        assert (await user.events(impossible))[-1].event == "cancelled"
        costs = TripCosts(Decimal(str(default_tier)), Decimal(str(cheapest)))
        assert costs.cheapest < costs.default_tier, costs  # else no budget sits between them
        yield costs


async def test_a_plan_runs_every_stage_once_and_stores_version_1(new_user: UserFactory) -> None:
    user = await new_user("normal")
    plan_id = await user.create_plan()

    events = await user.events(plan_id)

    assert kinds(events)[0] == "accepted" and kinds(events)[-1] == "completed", kinds(events)
    assert [e.data["stage"] for e in events if e.event == "stage_started"] == STAGES
    for kind in ("agent_started", "agent_completed"):
        agents = [e.data["agent"] for e in events if e.event == kind]
        assert sorted(agents) == sorted(AGENTS), (kind, agents)
    for agent in AGENTS:  # each agent is announced started, then completed
        mine = [e.event for e in events if e.data["agent"] == agent]
        assert mine == ["agent_started", "agent_completed"], (agent, mine)
    assert "agent_failed" not in kinds(events) and "approval_required" not in kinds(events)
    percentages = [e.data["completion_percentage"] for e in events]
    assert percentages == sorted(percentages) and percentages[-1] == 100, percentages
    assert {e.data["version"] for e in events} == {1}
    assert len({e.data["run_id"] for e in events}) == 1

    plan = await user.plan(plan_id)
    assert (plan["status"], plan["version"], plan["completion_percentage"]) == ("completed", 1, 100)
    assert plan["status_reason"] is None
    sections = plan["plan_data"]["sections"]
    assert {name: s["status"] for name, s in sections.items()} == dict.fromkeys(AGENTS - {"planning"}, "ok")
    budget = plan["plan_data"]["budget"]
    assert budget["within_budget"] is True and budget["accepted_overrun"] is False
    assert Decimal(str(budget["total_estimated"])) <= Decimal(plan["budget_total"])
    assert len(plan["plan_data"]["itinerary"]) == 6  # 2027-05-01 .. 2027-05-06

    versions = await user.versions(plan_id)
    assert lineage(versions) == [(1, None, "completed")]
    r = await user.get(f"/api/v1/plans/{plan_id}/versions/1")
    assert r.status_code == 200, r.text
    stored = r.json()
    assert stored["plan_data"] == plan["plan_data"]
    results = stored["agent_results"]
    assert set(results) == AGENTS
    assert {(a, r["status"], r["attempt"], r["round"]) for a, r in results.items()} == {
        (a, "ok", 1, 0) for a in AGENTS
    }
    assert (await user.get(f"/api/v1/plans/{plan_id}/versions/2")).status_code == 404


async def test_over_budget_loops_to_cheaper_options_and_finishes_within_budget(
    new_user: UserFactory, trip_costs: TripCosts
) -> None:
    # Over what the default tier costs, under what the cheapest options cost.
    budget = ((trip_costs.default_tier + trip_costs.cheapest) / 2).quantize(Decimal("0.01"))
    user = await new_user("looper")
    plan_id = await user.create_plan(budget_total=str(budget))

    events = await user.events(plan_id)

    assert kinds(events)[-1] == "completed", kinds(events)
    options_rounds = rounds_of(events, "options")
    assert options_rounds[:2] == [0, 1] and options_rounds == list(range(len(options_rounds)))
    assert len(options_rounds) <= MAX_BUDGET_ROUNDS + 1
    assert rounds_of(events, "budget") == options_rounds
    assert "approval_required" not in kinds(events)
    plan = await user.plan(plan_id)
    final_budget = plan["plan_data"]["budget"]
    assert final_budget["within_budget"] is True and final_budget["accepted_overrun"] is False
    assert Decimal(str(final_budget["total_estimated"])) <= budget
    # the tighter constraints reached the agents: the stays are now budget tier
    stays = plan["plan_data"]["sections"]["accommodation"]["stays"]
    assert {s["tier"] for s in stays} == {"budget"}
    results = (await user.get(f"/api/v1/plans/{plan_id}/versions/1")).json()["agent_results"]
    assert results["budget"]["round"] == options_rounds[-1] >= 1


async def test_still_over_budget_waits_for_approval_and_approve_accepts_the_overrun(
    new_user: UserFactory,
) -> None:
    user = await new_user("approver")
    plan_id = await user.create_plan(budget_total=1)

    events = await wait_for_approval(user, plan_id)

    rounds = list(range(MAX_BUDGET_ROUNDS + 1))
    assert rounds_of(events, "options") == rounds and rounds_of(events, "budget") == rounds
    assert "planning" not in [e.data["stage"] for e in events if e.event == "stage_started"]
    approval = events[-1].data
    assert approval["status"] == "awaiting_approval"
    overrun = approval["data"]["overrun"]
    assert overrun > 0 and approval["data"]["budget"]["within_budget"] is False
    assert "over budget" in approval["message"]
    waiting = await user.plan(plan_id)
    assert waiting["status"] == "awaiting_approval" and "over budget" in (waiting["status_reason"] or "")
    assert await user.versions(plan_id) == []  # no version until the run ends

    r = await user.post(f"/api/v1/plans/{plan_id}/decision", json={"approve": True})
    assert r.status_code == 202, r.text
    rest = await user.events(plan_id, last_event_id=events[-1].id)

    assert kinds(rest)[0] == "decision_recorded" and rest[0].data["data"]["approve"] is True
    assert kinds(rest)[-1] == "completed", kinds(rest)
    assert [e.data["stage"] for e in rest if e.event == "stage_started"] == ["planning"]
    plan = await user.plan(plan_id)
    assert plan["status"] == "completed" and plan["plan_data"]["itinerary"]
    budget = plan["plan_data"]["budget"]
    assert budget["accepted_overrun"] is True and budget["within_budget"] is False
    assert budget["overrun"] == overrun
    versions = await user.versions(plan_id)
    assert lineage(versions) == [(1, None, "completed")]


async def test_still_over_budget_and_rejected_ends_cancelled(new_user: UserFactory) -> None:
    user = await new_user("rejecter")
    plan_id = await user.create_plan(budget_total=1)
    events = await wait_for_approval(user, plan_id)

    r = await user.post(f"/api/v1/plans/{plan_id}/decision", json={"approve": False})
    assert r.status_code == 202, r.text
    rest = await user.events(plan_id, last_event_id=events[-1].id)

    assert kinds(rest)[0] == "decision_recorded" and rest[0].data["data"]["approve"] is False
    assert kinds(rest)[-1] == "cancelled", kinds(rest)
    assert "stage_started" not in kinds(rest) and "agent_started" not in kinds(rest)
    plan = await user.plan(plan_id)
    assert plan["status"] == "cancelled" and plan["status_reason"] == "budget overrun rejected"
    assert plan["plan_data"]["itinerary"] == []
    versions = await user.versions(plan_id)
    assert lineage(versions) == [(1, None, "cancelled")]
    # a second answer does not overturn the first
    r = await user.post(f"/api/v1/plans/{plan_id}/decision", json={"approve": True})
    assert r.status_code == 202
    assert (await user.plan(plan_id))["status"] == "cancelled"


async def test_two_revisions_make_versions_2_and_3_with_their_parents(new_user: UserFactory) -> None:
    user = await new_user("reviser")
    plan_id = await user.create_plan()
    first = await user.events(plan_id)
    assert kinds(first)[-1] == "completed", kinds(first)

    feedback = "More time by the sea, fewer museums"
    r = await user.put(f"/api/v1/plans/{plan_id}", json={"feedback": feedback})
    assert r.status_code == 202, r.text
    second = await user.events_until(plan_id, end_of_version(2), last_event_id=first[-1].id)
    r = await user.put(f"/api/v1/plans/{plan_id}", json={"budget_total": 5000})
    assert r.status_code == 202, r.text
    third = await user.events_until(plan_id, end_of_version(3), last_event_id=second[-1].id)

    for run, version in ((second, 2), (third, 3)):
        assert kinds(run)[0] == "accepted" and run[0].data["data"]["parent_version"] == version - 1
        assert kinds(run)[-1] == "completed", kinds(run)
        assert {e.data["version"] for e in run} == {version}
    assert len({first[0].data["run_id"], second[0].data["run_id"], third[0].data["run_id"]}) == 3

    versions = await user.versions(plan_id)
    assert lineage(versions) == [
        (1, None, "completed"),
        (2, 1, "completed"),
        (3, 2, "completed"),
    ]
    by_number = {v["version"]: v for v in versions}
    assert by_number[2]["feedback"] == feedback and by_number[3]["feedback"] is None
    assert Decimal(by_number[1]["request"]["budget_total"]) == 4000
    assert Decimal(by_number[3]["request"]["budget_total"]) == 5000
    # feedback reaches every agent (nothing reused); an unchanged trip reuses the research
    models = {n: {a: r["model"] for a, r in v["agent_results"].items()} for n, v in by_number.items()}
    assert not any(m.startswith("reused:") for m in models[2].values()), models[2]
    assert {a for a, m in models[3].items() if m.startswith("reused:")} == {"location", "weather"}
    plan = await user.plan(plan_id)
    assert (plan["version"], plan["status"]) == (3, "completed")
    assert Decimal(plan["budget_total"]) == 5000


async def test_revision_while_running_reject_is_409_and_enqueue_runs_after(
    new_user: UserFactory,
) -> None:
    user = await new_user("enqueuer")
    plan_id = await user.create_plan(budget_total=1)
    events = await wait_for_approval(user, plan_id)

    for body in ({"budget_total": 1_000_000}, {"budget_total": 1_000_000, "multitask_strategy": "reject"}):
        r = await user.put(f"/api/v1/plans/{plan_id}", json=body)
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await user.put(
        f"/api/v1/plans/{plan_id}", json={"budget_total": 1_000_000, "multitask_strategy": "enqueue"}
    )
    assert r.status_code == 202, r.text
    waiting = await user.plan(plan_id)
    assert (waiting["status"], waiting["version"]) == ("awaiting_approval", 1)

    r = await user.post(f"/api/v1/plans/{plan_id}/decision", json={"approve": True})
    assert r.status_code == 202, r.text
    rest = await user.events_until(plan_id, end_of_version(2), last_event_id=events[-1].id)

    ends = [(e.event, e.data["version"]) for e in rest if e.event in TERMINAL]
    assert ends == [("completed", 1), ("completed", 2)], kinds(rest)
    versions = await user.versions(plan_id)
    assert lineage(versions) == [
        (1, None, "completed"),
        (2, 1, "completed"),
    ]
    by_number = {v["version"]: v for v in versions}
    assert by_number[1]["plan_data"]["budget"]["accepted_overrun"] is True
    assert by_number[2]["plan_data"]["budget"]["within_budget"] is True
    # the rejected revisions never ran: there is no third version
    assert (await user.plan(plan_id))["version"] == 2


async def test_revision_while_running_with_interrupt_cancels_the_run_and_starts_the_new_one(
    new_user: UserFactory,
) -> None:
    user = await new_user("interrupter")
    plan_id = await user.create_plan(budget_total=1)
    events = await wait_for_approval(user, plan_id)

    r = await user.put(
        f"/api/v1/plans/{plan_id}",
        json={
            "budget_total": 1_000_000,
            "feedback": "forget the cost",
            "multitask_strategy": "interrupt",
        },
    )
    assert r.status_code == 202, r.text
    rest = await user.events_until(plan_id, end_of_version(2), last_event_id=events[-1].id)

    ends = [(e.event, e.data["version"]) for e in rest if e.event in TERMINAL]
    assert ends == [("cancelled", 1), ("completed", 2)], kinds(rest)
    assert "decision_recorded" not in kinds(rest)
    versions = await user.versions(plan_id)
    assert lineage(versions) == [
        (1, None, "cancelled"),
        (2, 1, "completed"),
    ]
    r = await user.get(f"/api/v1/plans/{plan_id}/versions/2")
    assert r.json()["feedback"] == "forget the cost"
