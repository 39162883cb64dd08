"""Every agent end to end: real engine, real litellm, the deterministic local model, real tools."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from tripmesh_agent_runner.agents import AGENTS, AgentOutcome, run_agent
from tripmesh_agent_runner.llm.litellm_client import LitellmClient
from tripmesh_agent_runner.tools import ToolRegistry
from tripmesh_contracts import AgentJob, AgentName

JobFactory = Callable[..., AgentJob]
OPTIONS = (AgentName.TRANSPORT, AgentName.ACCOMMODATION, AgentName.ACTIVITY)


async def run(job: AgentJob, llm: LitellmClient, tools: ToolRegistry) -> AgentOutcome:
    outcome = await run_agent(job, llm, tools)
    assert outcome.ok, (outcome.error_kind, outcome.error)
    assert outcome.output is not None
    assert not outcome.refused_tool_calls
    return outcome


async def _context(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry, **kw: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for agent in (AgentName.LOCATION, AgentName.WEATHER, *OPTIONS):
        outcome = await run(make_job(agent, context=dict(context), **kw), llm, tools)
        context[agent.value] = outcome.output
    return context


async def test_location_lisbon(make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry) -> None:
    outcome = await run(make_job(AgentName.LOCATION, destinations=("Lisbon",)), llm, tools)
    assert outcome.output is not None
    (lisbon,) = outcome.output["destinations"]
    assert (lisbon["country_code"], lisbon["currency"], lisbon["timezone"], lisbon["iata"]) == (
        "PT", "EUR", "Europe/Lisbon", "LIS",
    )  # fmt: skip
    assert "Capital of Portugal" in lisbon["highlights"]
    assert [h["date"] for h in lisbon["holidays_during_trip"]] == ["2026-12-01"]
    # Usage is accounted per call: a tool turn, then the answer; the local model is free.
    assert [c.turn for c in outcome.llm_calls] == [1, 2]
    assert all(c.provider == "tripmesh-local" and c.prompt_tokens > 100 for c in outcome.llm_calls)
    assert outcome.cost_usd == 0 and outcome.completion_tokens > 0
    assert {c.name for c in outcome.tool_calls} == {"place_info", "public_holidays"}


async def test_weather_per_destination_and_month(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    outcome = await run(make_job(AgentName.WEATHER), llm, tools)
    assert outcome.output is not None
    entries = {(w["destination"], w["month"]): w for w in outcome.output["destinations"]}
    assert set(entries) == {("Lisbon", 11), ("Lisbon", 12), ("Porto", 11), ("Porto", 12)}
    assert all(w["source"] == "estimate" and w["avg_low_c"] < w["avg_high_c"] for w in entries.values())
    assert outcome.output["packing_tips"]


async def test_transport_london_to_lisbon(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    outcome = await run(make_job(AgentName.TRANSPORT, destinations=("Lisbon",)), llm, tools)
    assert outcome.output is not None
    outbound, back = outcome.output["legs"]
    assert (outbound["from"], outbound["to"], outbound["mode"]) == ("London", "Lisbon", "flight")
    assert outbound["distance_km"] == pytest.approx(1585, abs=15)
    assert outbound["date"] == "2026-11-27" and back["date"] == "2026-12-03"
    assert outcome.output["currency"] == "EUR"
    assert outcome.output["total"] == pytest.approx(2 * outcome.output["total_per_person"], abs=0.02)


async def test_budget_tier_takes_the_cheapest_mode(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    job = make_job(AgentName.TRANSPORT, origin=None, travelers=4, constraints={"tier": "budget"})
    (leg,) = (await run(job, llm, tools)).output["legs"]  # type: ignore[index]
    assert (leg["from"], leg["to"], leg["mode"]) == ("Lisbon", "Porto", "car")


async def test_accommodation_nights_add_up(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    mid = (await run(make_job(AgentName.ACCOMMODATION), llm, tools)).output
    cheap = (await run(make_job(AgentName.ACCOMMODATION, constraints={"tier": "budget"}), llm, tools)).output
    assert mid is not None and cheap is not None
    assert [(s["destination"], s["nights"]) for s in mid["stays"]] == [("Lisbon", 4), ("Porto", 2)]
    assert cheap["total"] < mid["total"] and {s["tier"] for s in cheap["stays"]} == {"budget"}


async def test_activities_respect_max_paid(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    job = make_job(AgentName.ACTIVITY, constraints={"tier": "budget", "max_paid_activities": 1})
    output = (await run(job, llm, tools)).output
    assert output is not None
    for entry in output["destinations"]:
        assert sum(a["paid"] for a in entry["activities"]) <= 1
        assert any(not a["paid"] for a in entry["activities"])
    unconstrained = (await run(make_job(AgentName.ACTIVITY), llm, tools)).output
    assert unconstrained is not None and output["total"] < unconstrained["total"]


async def test_budget_within_and_over(make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry) -> None:
    context = await _context(make_job, llm, tools)
    roomy = (await run(make_job(AgentName.BUDGET, context=context, budget="20000"), llm, tools)).output
    tiny = (await run(make_job(AgentName.BUDGET, context=context, budget="100"), llm, tools)).output
    assert roomy is not None and tiny is not None
    assert roomy["within_budget"] and roomy["overrun"] == 0
    assert not tiny["within_budget"] and tiny["overrun"] == pytest.approx(
        tiny["total_estimated"] - 100, abs=0.01
    )
    assert tiny["suggestions"] and tiny["currency"] == "EUR"
    breakdown = tiny["breakdown"]
    assert breakdown["transport"] == context["transport"]["total"]
    assert breakdown["accommodation"] == context["accommodation"]["total"]
    assert breakdown["food"] > 0


async def test_planning_one_day_per_date(
    make_job: JobFactory, llm: LitellmClient, tools: ToolRegistry
) -> None:
    start, end = date(2026, 11, 27), date(2026, 12, 6)
    dests = ("Lisbon", "Porto", "Madrid")
    context = await _context(make_job, llm, tools, destinations=dests, start=start, end=end)
    job = make_job(AgentName.PLANNING, destinations=dests, start=start, end=end, context=context)
    output = (await run(job, llm, tools)).output
    assert output is not None
    days = output["days"]
    assert [d["date"] for d in days] == [(start + timedelta(days=i)).isoformat() for i in range(10)]
    assert [d["day_number"] for d in days] == list(range(1, 11))
    assert [d["destination"] for d in days] == ["Lisbon"] * 4 + ["Porto"] * 3 + ["Madrid"] * 3
    assert days[0]["morning"].startswith("Travel London -> Lisbon")
    assert "Restoration of Independence Day" in days[4]["notes"]
    assert output["summary"].startswith("10-day trip")


async def test_every_agent_has_a_spec_with_known_tools(tools: ToolRegistry) -> None:
    assert set(AGENTS) == set(AgentName)
    for spec in AGENTS.values():
        assert spec.allowed_tools <= set(tools.names), spec.name
        assert spec.output_model.model_json_schema()["type"] == "object"
