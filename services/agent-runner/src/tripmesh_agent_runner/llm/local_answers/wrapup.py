"""Stand-in answers of the last stages: the budget check and the day-by-day itinerary."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from tripmesh_agent_runner.agents.common import nights_per_destination, split_days
from tripmesh_agent_runner.llm.local_answers.common import Conversation, money

ToolPlan = list[tuple[str, dict[str, Any]]]
SECTIONS = {"transport": "transport", "accommodation": "accommodation", "activity": "activities"}


def _section(conversation: Conversation, agent: str) -> dict[str, Any]:
    value = conversation.context.get(agent)
    return value if isinstance(value, dict) else {}


def budget_tools(conversation: Conversation) -> ToolPlan:
    countries = dict.fromkeys(d["country_code"] for d in conversation.destinations)
    args = {"tier": conversation.tier, "currency": conversation.currency}
    plan: ToolPlan = [("cost_estimates", {"country_code": cc, **args}) for cc in countries]
    for agent in SECTIONS:
        section = _section(conversation, agent)
        if section.get("currency") not in (None, conversation.currency):
            amount = float(section.get("total", 0))
            conversion = {
                "amount": amount,
                "from_currency": section["currency"],
                "to_currency": conversation.currency,
            }
            plan.append(("convert_currency", conversion))
    return plan


def _amount(conversation: Conversation, agent: str) -> float | None:
    section = _section(conversation, agent)
    if "total" not in section:
        return None
    if section.get("currency") in (None, conversation.currency):
        return float(section["total"])
    converted = conversation.result_for("convert_currency", from_currency=section["currency"])
    return float(converted["converted"]) if converted else None


def budget_answer(conversation: Conversation) -> dict[str, Any]:
    names = [d["name"] for d in conversation.destinations]
    days = split_days(conversation.start, conversation.end, names)
    notes = []
    food = 0.0
    lodging_estimate = 0.0
    nights = nights_per_destination(conversation.start, conversation.end, names)
    for destination in conversation.destinations:
        estimate = conversation.result_for("cost_estimates", country_code=destination["country_code"])
        prices = (
            estimate["tiers"][conversation.tier]
            if estimate
            else {"food_per_day": 0.0, "lodging_per_night": 0.0}
        )
        days_here = sum(1 for _, name in days if name == destination["name"])
        food += prices["food_per_day"] * days_here * conversation.travelers
        lodging_estimate += (
            prices["lodging_per_night"] * nights[destination["name"]] * math.ceil(conversation.travelers / 2)
        )
    breakdown = {}
    for agent, key in SECTIONS.items():
        amount = _amount(conversation, agent)
        if amount is None and agent == "accommodation":
            amount = lodging_estimate
            notes.append("accommodation estimated from price levels (no accommodation result)")
        elif amount is None:
            notes.append(f"no {agent} estimate available; counted as 0")
        breakdown[key] = money(amount or 0.0)
    breakdown["food"] = money(food)
    total = money(sum(breakdown.values()))
    budget = float(conversation.trip.get("budget_total", 0))
    overrun = money(max(0.0, total - budget))
    suggestions = _savings(conversation, breakdown, overrun, len(days)) if overrun > 0 else []
    if overrun == 0:
        suggestions.append(
            f"About {money(budget - total)} {conversation.currency} left for extras and contingencies."
        )
    return {
        "total_estimated": total,
        "currency": conversation.currency,
        "budget_total": budget,
        "within_budget": overrun == 0,
        "overrun": overrun,
        "breakdown": breakdown,
        "suggestions": suggestions,
        "notes": "; ".join([*notes, "all figures are estimates"]),
    }


def _savings(conversation: Conversation, breakdown: dict[str, float], overrun: float, days: int) -> list[str]:
    ideas = []
    if conversation.tier != "budget":
        ideas.append("Switch to the budget tier: hostels or guesthouses and cheaper meals.")
    if breakdown["activities"] > 0:
        ideas.append("Keep to one paid activity per destination; favour free walks, markets and viewpoints.")
    if breakdown["transport"] > 0:
        ideas.append("Take trains or buses instead of flights where the distance allows.")
    per_day = sum(breakdown.values()) / max(days, 1)
    if per_day > 0:
        cut = math.ceil(overrun / per_day)
        ideas.append(
            f"Shorten the trip by about {cut} day(s) (~{money(per_day)} {conversation.currency} a day)."
        )
    return ideas


def planning_tools(conversation: Conversation) -> ToolPlan:
    window = {"start_date": conversation.trip["start_date"], "end_date": conversation.trip["end_date"]}
    countries = dict.fromkeys(d["country_code"] for d in conversation.destinations)
    return [("public_holidays", {"country_code": cc, **window}) for cc in countries]


def _activities_by_destination(conversation: Conversation) -> dict[str, list[dict[str, Any]]]:
    entries = _section(conversation, "activity").get("destinations", [])
    return {e["destination"]: list(e.get("activities", [])) for e in entries if isinstance(e, dict)}


def _weather(conversation: Conversation, name: str, day: date) -> str | None:
    for entry in _section(conversation, "weather").get("destinations", []):
        if entry.get("destination") == name and entry.get("month") == day.month:
            return str(entry.get("summary", ""))
    return None


def planning_answer(conversation: Conversation) -> dict[str, Any]:
    names = [d["name"] for d in conversation.destinations]
    country = {d["name"]: d["country_code"] for d in conversation.destinations}
    legs = {leg.get("date"): leg for leg in _section(conversation, "transport").get("legs", [])}
    activities = _activities_by_destination(conversation)
    holidays = {
        (cc, h["date"]): h["name"]
        for r in conversation.results_of("public_holidays")
        for cc in [r.arguments.get("country_code")]
        for h in r.result.get("holidays", [])
    }
    days, seen = [], {name: 0 for name in names}
    queues: dict[str, list[str]] = {}
    for number, (day, name) in enumerate(split_days(conversation.start, conversation.end, names), start=1):
        ideas = [a["name"] for a in activities.get(name, [])]
        # Sunset ideas belong in the evening; every other idea is used once (paid ones were
        # priced once), then the days fill with free time.
        evening_ideas = [i for i in ideas if "sunset" in i.casefold()]
        queue = queues.setdefault(name, [i for i in ideas if i not in evening_ideas])
        index = seen[name]
        seen[name] += 1
        morning = queue.pop(0) if queue else f"Free morning to explore {name}"
        afternoon = queue.pop(0) if queue else f"Free afternoon in {name}"
        dinner = f"Dinner at a local restaurant in {name}"
        evening = f"{evening_ideas[0]}, then dinner" if evening_ideas and index % 2 == 0 else dinner
        leg = legs.get(day.isoformat())
        title = f"Day {number} in {name}"
        if leg:
            if not morning.startswith("Free"):
                queue.insert(0, morning)  # travelling this morning: keep the idea for later
            morning = f"Travel {leg['from']} -> {leg['to']} by {leg['mode']} (~{leg['duration_h']} h)"
            title = f"Arrive in {leg['to']}" if leg["to"] == name else f"{name}, then home"
        notes = [
            n
            for n in (_weather(conversation, name, day), holidays.get((country[name], day.isoformat())))
            if n
        ]
        days.append(
            {
                "date": day.isoformat(),
                "day_number": number,
                "destination": name,
                "title": title,
                "morning": morning,
                "afternoon": afternoon,
                "evening": evening,
                "notes": " | ".join(notes),
            }
        )
    split = ", ".join(f"{n} ({seen[n]} day{'s' if seen[n] != 1 else ''})" for n in names if seen[n])
    budget = _section(conversation, "budget")
    cost = ""
    if "total_estimated" in budget:
        verdict = (
            "within budget" if budget.get("within_budget") else f"over budget by {budget.get('overrun')}"
        )
        cost = f" Estimated total {budget['total_estimated']} {budget.get('currency', '')} ({verdict})."
    return {"days": days, "summary": f"{len(days)}-day trip: {split}.{cost}"}
