"""Stand-in answers of the research stage: location and weather."""

from __future__ import annotations

from typing import Any

from tripmesh_agent_runner.llm.local_answers.common import Conversation

ToolPlan = list[tuple[str, dict[str, Any]]]


def _unique_countries(conversation: Conversation) -> list[str]:
    return list(dict.fromkeys(d["country_code"] for d in conversation.destinations))


def location_tools(conversation: Conversation) -> ToolPlan:
    plan: ToolPlan = [("place_info", {"geoname_id": d["geoname_id"]}) for d in conversation.destinations]
    window = {"start_date": conversation.trip["start_date"], "end_date": conversation.trip["end_date"]}
    plan += [("public_holidays", {"country_code": cc, **window}) for cc in _unique_countries(conversation)]
    return plan


def location_answer(conversation: Conversation) -> dict[str, Any]:
    destinations = []
    for requested in conversation.destinations:
        # Tool facts when the call worked, else the resolved place the trip already carries.
        info = conversation.result_for("place_info", geoname_id=requested["geoname_id"]) or requested
        holidays = conversation.result_for("public_holidays", country_code=requested["country_code"]) or {}
        during = list(holidays.get("holidays", []))
        highlights = []
        if info.get("is_capital"):
            highlights.append(f"Capital of {info['country']}")
        if info.get("population"):
            highlights.append(f"City of about {round(int(info['population']), -3):,} people")
        if info.get("iata"):
            airport = info.get("airport_name") or "main airport"
            highlights.append(f"Fly into {airport} ({info['iata']})")
        if info.get("currency"):
            currency_name = info.get("currency_name")
            highlights.append(
                f"Pay in {currency_name} ({info['currency']})"
                if currency_name
                else f"Pay in {info['currency']}"
            )
        highlights += [f"Public holiday on {h['date']}: {h['name']}" for h in during]
        destinations.append(
            {
                "name": requested["name"],
                "country": info.get("country", requested["country"]),
                "country_code": requested["country_code"],
                "currency": info.get("currency"),
                "timezone": info.get("timezone", requested["timezone"]),
                "population": int(info.get("population") or 0),
                "lat": info.get("latitude", requested["latitude"]),
                "lon": info.get("longitude", requested["longitude"]),
                "iata": info.get("iata"),
                "languages": list(info.get("languages", [])),
                "highlights": highlights,
                "holidays_during_trip": during,
            }
        )
    summary = "; ".join(
        f"{d['name']} ({d['country']}): {d['currency'] or 'local currency'}, {d['timezone']}"
        + (f", fly into {d['iata']}" if d["iata"] else "")
        for d in destinations
    )
    return {"destinations": destinations, "summary": summary}


def weather_tools(conversation: Conversation) -> ToolPlan:
    window = {"start_date": conversation.trip["start_date"], "end_date": conversation.trip["end_date"]}
    return [
        ("climate_estimate", {"geoname_id": d["geoname_id"], **window}) for d in conversation.destinations
    ]


def _packing_tips(entries: list[dict[str, Any]]) -> list[str]:
    if not entries:
        return []
    tips = []
    if max(e["rain_days"] for e in entries) >= 8:
        tips.append("Pack a rain jacket or a compact umbrella.")
    if max(e["avg_high_c"] for e in entries) >= 25:
        tips.append("Light, breathable clothes, a hat and sunscreen.")
    if min(e["avg_low_c"] for e in entries) <= 8:
        tips.append("Warm layers for cool mornings and evenings.")
    if min(e["avg_low_c"] for e in entries) <= 0:
        tips.append("A winter coat, gloves and shoes with grip.")
    tips.append("Comfortable walking shoes.")
    return tips


def weather_answer(conversation: Conversation) -> dict[str, Any]:
    entries = []
    for requested in conversation.destinations:
        climate = conversation.result_for("climate_estimate", geoname_id=requested["geoname_id"]) or {}
        for month in climate.get("months", []):
            entries.append(
                {
                    "destination": requested["name"],
                    "month": month["month"],
                    "avg_high_c": month["avg_high_c"],
                    "avg_low_c": month["avg_low_c"],
                    "rain_days": month["rain_days"],
                    "summary": month["summary"],
                    "source": month["source"],
                }
            )
    return {"destinations": entries, "packing_tips": _packing_tips(entries)}
