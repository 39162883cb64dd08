"""Stand-in answers of the options stage: transport, accommodation, activities."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from tripmesh_agent_runner.agents.common import nights_per_destination, split_days
from tripmesh_agent_runner.llm.local_answers.common import Conversation, money

ToolPlan = list[tuple[str, dict[str, Any]]]
TRAIN_OVER_FLIGHT_HOURS = 1.0
"""Take the train when it is at most this much slower than flying."""
PAID_PER_DESTINATION = {"budget": 1, "mid": 2, "premium": 3}
LODGING = {
    "budget": "Hostel, guesthouse or budget hotel near public transport",
    "mid": "3-star hotel or apartment in a central neighbourhood",
    "premium": "4-5 star hotel in the historic centre",
}


def _stops(conversation: Conversation) -> list[dict[str, Any]]:
    origin = conversation.trip.get("origin")
    stops = ([origin] if origin else []) + conversation.destinations + ([origin] if origin else [])
    return [s for i, s in enumerate(stops) if i == 0 or s["geoname_id"] != stops[i - 1]["geoname_id"]]


def transport_tools(conversation: Conversation) -> ToolPlan:
    stops = _stops(conversation)
    common = {"travelers": conversation.travelers, "currency": conversation.currency}
    return [
        ("distance_km", {"from_geoname_id": a["geoname_id"], "to_geoname_id": b["geoname_id"], **common})
        for a, b in pairwise(stops)
    ]


def _choose_mode(options: list[dict[str, Any]], tier: str) -> dict[str, Any] | None:
    available = [o for o in options if o["available"]]
    if not available:
        return None
    if tier == "budget":
        return min(available, key=lambda o: o["est_cost_per_person"])
    fastest = min(available, key=lambda o: o["duration_h"])
    train = next((o for o in available if o["mode"] == "train"), None)
    if train and train["duration_h"] <= fastest["duration_h"] + TRAIN_OVER_FLIGHT_HOURS:
        return train
    return fastest


def _leg_dates(conversation: Conversation) -> dict[str, str]:
    """Arrival date per destination name: the first day spent there."""
    names = [d["name"] for d in conversation.destinations]
    firsts: dict[str, str] = {}
    for day, name in split_days(conversation.start, conversation.end, names):
        firsts.setdefault(name, day.isoformat())
    return firsts


def transport_answer(conversation: Conversation) -> dict[str, Any]:
    arrivals = _leg_dates(conversation)
    legs = []
    for result in conversation.results_of("distance_km"):
        leg = result.result
        chosen = _choose_mode(leg["modes"], conversation.tier)
        if chosen is None:
            continue
        flight = chosen["mode"] == "flight" and leg.get("from_iata") and leg.get("to_iata")
        legs.append(
            {
                "from": leg["from"],
                "to": leg["to"],
                "mode": chosen["mode"],
                "distance_km": leg["distance_km"],
                "duration_h": chosen["duration_h"],
                "est_cost_per_person": chosen["est_cost_per_person"],
                "currency": chosen["currency"],
                "date": arrivals.get(leg["to"], conversation.trip["end_date"]),
                "notes": f"{leg['from_iata']} -> {leg['to_iata']}; estimate" if flight else "estimate",
            }
        )
    per_person = money(sum(leg["est_cost_per_person"] for leg in legs))
    summary = ", ".join(
        f"{leg['from']} -> {leg['to']} by {leg['mode']} (~{leg['duration_h']} h)" for leg in legs
    )
    return {
        "legs": legs,
        "total_per_person": per_person,
        "total": money(per_person * conversation.travelers),
        "currency": conversation.currency,
        "summary": summary or "No travel between places needed.",
    }


def _price_tools(conversation: Conversation) -> ToolPlan:
    countries = dict.fromkeys(d["country_code"] for d in conversation.destinations)
    args = {"tier": conversation.tier, "currency": conversation.currency}
    return [("cost_estimates", {"country_code": cc, **args}) for cc in countries]


def _prices(conversation: Conversation, country_code: str) -> dict[str, float] | None:
    estimate = conversation.result_for("cost_estimates", country_code=country_code)
    return None if estimate is None else dict(estimate["tiers"][conversation.tier])


def accommodation_tools(conversation: Conversation) -> ToolPlan:
    return _price_tools(conversation)


def accommodation_answer(conversation: Conversation) -> dict[str, Any]:
    names = [d["name"] for d in conversation.destinations]
    nights = nights_per_destination(conversation.start, conversation.end, names)
    rooms = math.ceil(conversation.travelers / 2)
    stays = []
    for destination in conversation.destinations:
        prices = _prices(conversation, destination["country_code"])
        rate = prices["lodging_per_night"] if prices else 0.0
        count = nights[destination["name"]]
        stays.append(
            {
                "destination": destination["name"],
                "nights": count,
                "tier": conversation.tier,
                "rooms": rooms,
                "est_nightly_rate": rate,
                "total": money(rate * count * rooms),
                "currency": conversation.currency,
                "suggestion": LODGING[conversation.tier] if prices else "No price data; rate unknown",
            }
        )
    total = money(sum(s["total"] for s in stays))
    return {
        "stays": stays,
        "total": total,
        "currency": conversation.currency,
        "summary": f"{sum(nights.values())} nights, {rooms} room(s), {conversation.tier} tier (estimate)",
    }


def activity_tools(conversation: Conversation) -> ToolPlan:
    window = {"start_date": conversation.trip["start_date"], "end_date": conversation.trip["end_date"]}
    countries = dict.fromkeys(d["country_code"] for d in conversation.destinations)
    return _price_tools(conversation) + [
        ("public_holidays", {"country_code": cc, **window}) for cc in countries
    ]


def _interests(conversation: Conversation) -> set[str]:
    raw = conversation.user_data.get("preferences", {}) or {}
    values = raw.get("interests", []) if isinstance(raw, dict) else []
    return {str(v).casefold() for v in values} if isinstance(values, list) else set()


def _catalogue(city: str, price: float, interests: set[str]) -> list[dict[str, Any]]:
    """Generic activity ideas (the stand-in has no POI database), paid ones ranked by interest."""
    free = [
        ("Walking tour of the historic centre", "sightseeing", 3.0, f"Self-guided walk through old {city}."),
        ("Local market visit", "food", 2.0, f"Browse {city}'s food market; snacks count towards food."),
        ("Sunset viewpoint", "sightseeing", 1.5, f"Watch the sunset from one of {city}'s viewpoints."),
    ]
    paid = [
        ("Main museum or landmark", "culture", 2.5, 1.0, {"museums", "art", "history", "culture"}),
        ("Guided food tour", "food", 3.0, 2.0, {"food", "gastronomy", "wine"}),
        ("Day trip or boat tour", "nature", 6.0, 2.5, {"nature", "outdoors", "hiking", "beach"}),
    ]
    paid.sort(key=lambda p: not (p[4] & interests))

    def idea(name: str, category: str, hours: float, description: str, cost: float) -> dict[str, Any]:
        return {
            "name": f"{city}: {name}",
            "description": description,
            "category": category,
            "duration_h": hours,
            "paid": cost > 0,
            "est_cost_per_person": money(cost),
        }

    ticket = f"Estimated ticket or booking price in {city}."
    return [idea(n, c, h, d, 0.0) for n, c, h, d in free] + [
        idea(n, c, h, ticket, price * factor) for n, c, h, factor, _ in paid
    ]


def activity_answer(conversation: Conversation) -> dict[str, Any]:
    limit = PAID_PER_DESTINATION[conversation.tier]
    constraint = conversation.constraints.get("max_paid_activities")
    if isinstance(constraint, int):
        limit = min(limit, max(0, constraint))
    interests = _interests(conversation)
    entries = []
    for destination in conversation.destinations:
        prices = _prices(conversation, destination["country_code"])
        ideas = _catalogue(destination["name"], prices["activity"] if prices else 0.0, interests)
        free = [a for a in ideas if not a["paid"]]
        paid = [a for a in ideas if a["paid"] and a["est_cost_per_person"] > 0][:limit]
        holidays = conversation.result_for("public_holidays", country_code=destination["country_code"]) or {}
        for activity in paid:
            for holiday in holidays.get("holidays", []):
                activity["description"] += f" Check opening hours on {holiday['date']} ({holiday['name']})."
        entries.append({"destination": destination["name"], "activities": free + paid})
    per_person = money(sum(a["est_cost_per_person"] for e in entries for a in e["activities"]))
    return {
        "destinations": entries,
        "total_per_person": per_person,
        "total": money(per_person * conversation.travelers),
        "currency": conversation.currency,
        "summary": f"Up to {limit} paid activities per destination, the rest free (prices are estimates).",
    }
