"""Planner rules: ids, progress, budget loop, final status and plan data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts.ids import check_token
from tripmesh_contracts.plans import AgentName, Place, PlanRequest, PlanStatus, Stage
from tripmesh_planner import domain
from tripmesh_planner.domain import BudgetVerdict


def ok(agent: str, output: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"agent": agent, "status": domain.OK, "output": output or {"x": agent}}


def degraded(agent: str, reason: str = "boom") -> dict[str, Any]:
    return {"agent": agent, "status": domain.DEGRADED, "output": None, "reason": reason}


def all_ok(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    outcomes = {a.value: ok(a.value) for a in AgentName}
    outcomes.update(overrides)
    return outcomes


def request(days: int = 3) -> PlanRequest:
    lisbon = Place(
        geoname_id=2267057,
        name="Lisbon",
        country_code="PT",
        country="Portugal",
        latitude=38.7,
        longitude=-9.1,
        timezone="Europe/Lisbon",
    )
    return PlanRequest(
        title="Lisbon",
        destinations=[lisbon],
        start_date=date(2026, 5, 1),
        end_date=date.fromordinal(date(2026, 5, 1).toordinal() + days - 1),
        budget_total=Decimal("1500"),
    )


def test_ids_are_deterministic_distinct_and_subject_safe() -> None:
    a = domain.job_id("p", "r", Stage.OPTIONS, 0, AgentName.TRANSPORT, 1)
    assert a == domain.job_id("p", "r", Stage.OPTIONS, 0, AgentName.TRANSPORT, 1)
    others = {
        domain.job_id("p", "r", Stage.OPTIONS, 1, AgentName.TRANSPORT, 1),
        domain.job_id("p", "r", Stage.OPTIONS, 0, AgentName.TRANSPORT, 2),
        domain.job_id("p", "r", Stage.OPTIONS, 0, AgentName.ACTIVITY, 1),
        domain.job_id("p", "r2", Stage.OPTIONS, 0, AgentName.TRANSPORT, 1),
    }
    assert a not in others and len(others) == 4
    for value in (
        a,
        domain.create_run_id("p"),
        domain.revision_run_id("p", "c"),
        domain.event_id("r", "accepted"),
        domain.changed_id("p", 2),
        domain.deleted_id("p"),
    ):
        check_token(value)
    assert domain.create_run_id("p") != domain.revision_run_id("p", "c")
    assert domain.changed_id("p", 1) != domain.changed_id("p", 2)
    assert domain.thread_id("p", "r") == "p:r"


def test_progress_moves_with_stages_and_agents() -> None:
    assert domain.progress(Stage.INTAKE) == 5
    assert domain.progress(Stage.RESEARCH) == 20
    assert domain.progress(Stage.RESEARCH, 1, 2) == 27
    assert domain.progress(Stage.RESEARCH, 2, 2) == 35
    assert domain.progress(Stage.OPTIONS, 3, 3) == 65
    assert domain.progress(Stage.BUDGET, 1, 1) == 75
    assert domain.progress(Stage.PLANNING, 1, 1) == 95
    assert domain.progress(Stage.FINALIZE) == 100
    ordered = [domain.progress(s, d, 3) for s in Stage for d in range(4)]
    assert ordered == sorted(ordered)


@pytest.mark.parametrize(
    ("output", "round_", "expected"),
    [
        ({"within_budget": True, "overrun": 0}, 0, BudgetVerdict.WITHIN),
        ({"within_budget": False, "overrun": 300}, 0, BudgetVerdict.RETRY),
        ({"within_budget": False, "overrun": 300}, 1, BudgetVerdict.RETRY),
        ({"within_budget": False, "overrun": 300}, 2, BudgetVerdict.APPROVAL),
        ({"overrun": 300}, 0, BudgetVerdict.UNKNOWN),
        ({"within_budget": "no"}, 0, BudgetVerdict.UNKNOWN),
    ],
)
def test_budget_verdict(output: dict[str, Any], round_: int, expected: BudgetVerdict) -> None:
    assert domain.budget_verdict(ok("budget", output), round_, max_rounds=2) is expected


def test_budget_verdict_of_a_degraded_budget_agent_is_unknown() -> None:
    assert domain.budget_verdict(degraded("budget"), 0, 2) is BudgetVerdict.UNKNOWN
    assert domain.budget_verdict(None, 0, 2) is BudgetVerdict.UNKNOWN


def test_no_budget_rounds_asks_for_approval_at_once() -> None:
    assert domain.budget_verdict(ok("budget", {"within_budget": False}), 0, 0) is BudgetVerdict.APPROVAL


def test_tighter_constraints_get_tighter() -> None:
    first, second = domain.tighter_constraints(1, 250.456), domain.tighter_constraints(2, 100)
    assert first["tier"] == "budget" and first["max_paid_activities"] == 1
    assert first["reduce_by"] == 250.46
    assert second["max_paid_activities"] < first["max_paid_activities"]
    assert domain.overrun_of(ok("budget", {"overrun": "12.5"})) == 12.5
    assert domain.overrun_of(ok("budget", {"overrun": "lots"})) == 0.0


def test_agent_context_passes_only_healthy_earlier_outputs_and_feedback() -> None:
    outcomes = {"location": ok("location", {"city": "Lisbon"}), "weather": degraded("weather")}
    ctx = domain.agent_context(Stage.OPTIONS, outcomes, feedback="more museums")
    assert ctx == {"location": {"city": "Lisbon"}, "feedback": "more museums"}
    assert domain.agent_context(Stage.RESEARCH, outcomes) == {}
    planning = domain.agent_context(Stage.PLANNING, all_ok(), accepted_overrun=True)
    assert planning["budget_overrun_accepted"] is True
    assert set(planning) - {"budget_overrun_accepted"} == {a.value for a in domain.SECTION_AGENTS}


def test_final_status() -> None:
    assert domain.final_status(all_ok()) == (PlanStatus.COMPLETED, None)
    status, reason = domain.final_status(all_ok(weather=degraded("weather", "llm down")))
    assert status is PlanStatus.PARTIAL and reason is not None and "weather" in reason
    status, reason = domain.final_status(all_ok(planning=degraded("planning", "invalid_output")))
    assert status is PlanStatus.FAILED and reason is not None and "invalid_output" in reason
    assert domain.final_status(all_ok(), "cancelled", "by user") == (PlanStatus.CANCELLED, "by user")
    assert domain.final_status({}, "failed", "bad dates") == (PlanStatus.FAILED, "bad dates")
    status, _ = domain.final_status({"planning": ok("planning")})
    assert status is PlanStatus.PARTIAL  # sections never produced count as degraded


def test_plan_data_shape() -> None:
    req = request(days=3)
    planning = ok(
        "planning",
        {
            "itinerary": [{"day_number": 1, "destination": "Lisbon", "title": "Alfama"}],
            "summary": "Three days in Lisbon",
        },
    )
    outcomes = all_ok(
        planning=planning,
        weather=degraded("weather", "deadline"),
        budget=ok("budget", {"within_budget": True, "total": 900}),
    )
    data = domain.build_plan_data(req, outcomes, PlanStatus.PARTIAL)
    assert set(data) == {"itinerary", "sections", "summary", "budget"}
    assert len(data["itinerary"]) == 3 and data["itinerary"][0]["title"] == "Alfama"
    assert data["summary"] == "Three days in Lisbon"
    assert data["sections"]["weather"] == {"status": "degraded", "reason": "deadline"}
    assert data["sections"]["location"] == {"x": "location", "status": "ok"}
    assert set(data["sections"]) == {a.value for a in domain.SECTION_AGENTS}
    assert data["budget"] == {"within_budget": True, "total": 900, "accepted_overrun": False}


def test_plan_data_reads_the_runners_days_list_too() -> None:
    planning = ok(
        "planning", {"days": [{"day_number": 2, "destination": "Lisbon", "title": "Sintra"}], "summary": "s"}
    )
    data = domain.build_plan_data(request(days=3), all_ok(planning=planning), PlanStatus.COMPLETED)
    assert [d["title"] for d in data["itinerary"]] == ["Day 1 in Lisbon", "Sintra", "Day 3 in Lisbon"]


def test_plan_data_of_a_failed_run_has_no_itinerary() -> None:
    data = domain.build_plan_data(request(), all_ok(planning=degraded("planning")), PlanStatus.FAILED)
    assert data["itinerary"] == [] and data["summary"] == ""


def test_default_summary_when_the_agent_wrote_none() -> None:
    data = domain.build_plan_data(request(), all_ok(), PlanStatus.COMPLETED)
    assert data["summary"] == "Lisbon: 3 days in Lisbon."


def test_request_problems() -> None:
    assert domain.request_problems(request(days=3)) == []
    assert domain.request_problems(request(days=120))
    req = request()
    twice = req.model_copy(update={"destinations": req.destinations * 2})
    assert domain.request_problems(twice) == ["a destination is listed twice"]


def test_snapshot_and_agent_results() -> None:
    snap = domain.snapshot(request(), PlanStatus.COMPLETED, {"summary": "s"})
    assert snap.destinations == ["Lisbon"] and snap.countries == ["Portugal"] and snap.summary == "s"
    results = domain.agent_results({"weather": {**degraded("weather"), "attempt": 2, "output": None}})
    assert results == {"weather": {"status": "degraded", "reason": "boom", "attempt": 2}}


@pytest.mark.parametrize(
    ("ended", "verdict", "node"),
    [
        (None, BudgetVerdict.WITHIN, "dispatch_planning"),
        (None, BudgetVerdict.UNKNOWN, "dispatch_planning"),
        (None, BudgetVerdict.RETRY, "dispatch_options"),
        (None, BudgetVerdict.APPROVAL, "request_approval"),
        ("cancelled", BudgetVerdict.RETRY, "finalize"),
    ],
)
def test_node_after_budget(ended: str | None, verdict: BudgetVerdict, node: str) -> None:
    assert domain.node_after_budget(ended, verdict.value) == node


def test_budget_loop_runs_options_at_most_max_rounds_more_times() -> None:
    """Walk the loop as the graph does: always over budget -> rounds 0, 1, 2 then approval."""
    over = ok("budget", {"within_budget": False, "overrun": 10})
    round_, visited = 0, []
    while True:
        visited.append(round_)
        verdict = domain.budget_verdict(over, round_, max_rounds=2)
        if domain.node_after_budget(None, verdict.value) != "dispatch_options":
            break
        round_ += 1
    assert visited == [0, 1, 2] and verdict is BudgetVerdict.APPROVAL


def test_a_revision_reuses_research_only_when_its_inputs_did_not_change() -> None:
    before = request(days=3).model_dump(mode="json")
    cheaper = {**before, "budget_total": "900.00", "title": "cheaper"}
    assert domain.reusable_agents(Stage.RESEARCH, cheaper, before, None) == [
        AgentName.LOCATION,
        AgentName.WEATHER,
    ]
    assert domain.reusable_agents(Stage.RESEARCH, cheaper, before, "more museums") == []
    assert domain.reusable_agents(Stage.OPTIONS, cheaper, before, None) == []
    assert domain.reusable_agents(Stage.RESEARCH, cheaper, None, None) == []
    more_people = {**before, "traveler_count": 4}
    assert domain.reusable_agents(Stage.RESEARCH, more_people, before, None) == [AgentName.WEATHER]
    later = {**before, "start_date": "2026-06-01", "end_date": "2026-06-03"}
    assert domain.reusable_agents(Stage.RESEARCH, later, before, None) == []


def exhausted(agent: str, detail: str = "plan_cap_reached") -> dict[str, Any]:
    return {**degraded(agent, detail), "error_kind": "budget_exhausted"}


def test_a_budget_exhausted_agent_ends_the_plan_partial_and_says_why() -> None:
    outcomes = all_ok(activity=exhausted("activity"), budget=exhausted("budget"))
    status, reason = domain.final_status(outcomes)
    assert status is PlanStatus.PARTIAL
    assert (
        reason
        == "LLM budget exhausted (activity, budget not run to the end); degraded sections: activity, budget"
    )
    sections = domain.build_sections(outcomes)
    assert sections["activity"] == {
        "status": "degraded",
        "reason": "budget_exhausted",
        "detail": "plan_cap_reached",
    }
    assert sections["weather"]["status"] == "ok"
    assert domain.end_data(outcomes, status) == {
        "degraded": ["activity", "budget"],
        "reason": "budget_exhausted",
        "budget_exhausted": ["activity", "budget"],
    }


def test_a_budget_exhausted_planning_agent_still_ends_partial_with_the_day_skeleton() -> None:
    outcomes = all_ok(planning=exhausted("planning", "daily_cap_reached"))
    status, reason = domain.final_status(outcomes)
    assert (status, reason) == (PlanStatus.PARTIAL, "LLM budget exhausted (planning not run to the end)")
    data = domain.build_plan_data(request(days=3), outcomes, status)
    assert len(data["itinerary"]) == 3 and all(day["filled"] for day in data["itinerary"])
    # any other planning failure still fails the plan
    failed = all_ok(planning={**degraded("planning", "bad json"), "error_kind": "invalid_output"})
    assert domain.final_status(failed)[0] is PlanStatus.FAILED


def test_end_data_says_nothing_for_a_complete_plan_and_lists_degraded_sections_of_a_partial_one() -> None:
    assert domain.end_data(all_ok(), PlanStatus.COMPLETED) == {}
    assert domain.end_data(all_ok(weather=degraded("weather")), PlanStatus.PARTIAL) == {
        "degraded": ["weather"]
    }
