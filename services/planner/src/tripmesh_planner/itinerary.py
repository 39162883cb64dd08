"""Day-by-day itinerary: validate what the planning agent wrote and fill what it left out.

Pure functions. The API promises one day per date from start to end, each in one of the
requested destinations; an LLM may skip days, repeat them, invent places or number them
oddly, so the planner - not the agent - owns that promise.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tripmesh_contracts.plans import PlanRequest

SLOTS = ("morning", "afternoon", "evening")


def trip_dates(request: PlanRequest) -> list[date]:
    return [request.start_date + timedelta(days=i) for i in range(request.days)]


def default_destinations(request: PlanRequest) -> list[str]:
    """The destination of each day when the agent didn't say: the trip is split into
    consecutive blocks in the order the destinations were requested."""
    names = [place.name for place in request.destinations]
    days = request.days
    return [names[i * len(names) // days] for i in range(days)]


def _parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _day_index(item: dict[str, Any], start: date, days: int) -> int | None:
    """Where `item` belongs: by its date if it has a valid one, else by its day number."""
    when = _parse_date(item.get("date"))
    if when is not None:
        index = (when - start).days
        return index if 0 <= index < days else None
    number = item.get("day_number", item.get("day"))
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= days:
        return number - 1
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value if _text(v))
    if isinstance(value, dict):
        return _text(value.get("description") or value.get("name") or value.get("title"))
    return str(value)


def _match_destination(value: Any, names: list[str]) -> str | None:
    text = _text(value).casefold()
    if not text:
        return None
    for name in names:
        if name.casefold() == text:
            return name
    for name in names:  # "Lisbon, Portugal" or "Old town of Lisbon"
        if name.casefold() in text:
            return name
    return None


def normalize_itinerary(raw: Any, request: PlanRequest) -> list[dict[str, Any]]:
    """Exactly one day per trip date, in order, each in a requested destination.

    Days the agent wrote are kept (first one wins for a date); missing days are filled and
    marked `filled: true`; days outside the trip or not dicts are dropped; an unknown place
    is replaced by the day's default destination.
    """
    dates = trip_dates(request)
    names = [place.name for place in request.destinations]
    defaults = default_destinations(request)
    by_index: dict[int, dict[str, Any]] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        index = _day_index(item, request.start_date, len(dates))
        if index is not None and index not in by_index:
            by_index[index] = item

    days: list[dict[str, Any]] = []
    for index, when in enumerate(dates):
        item = by_index.get(index)
        destination = defaults[index]
        if item is not None:
            destination = _match_destination(item.get("destination"), names) or destination
        day: dict[str, Any] = {
            "date": when.isoformat(),
            "day_number": index + 1,
            "destination": destination,
            "title": _text(item.get("title")) if item else "",
            "notes": _text(item.get("notes")) if item else "",
            "filled": item is None,
        }
        for slot in SLOTS:
            day[slot] = _text(item.get(slot)) if item else ""
        if not day["title"]:
            day["title"] = f"Day {index + 1} in {destination}"
        if item is None:
            day["notes"] = "Free day: the planning agent left this day open."
        days.append(day)
    return days


def itinerary_problems(days: list[dict[str, Any]], request: PlanRequest) -> list[str]:
    """What is wrong with an itinerary against the request (empty list = valid)."""
    problems = []
    expected = [d.isoformat() for d in trip_dates(request)]
    got = [day.get("date") for day in days]
    if got != expected:
        problems.append(f"dates {got} do not cover {expected[0]}..{expected[-1]} once each")
    names = {place.name for place in request.destinations}
    strays = sorted({str(day.get("destination")) for day in days} - names)
    if strays:
        problems.append(f"days in places not requested: {strays}")
    numbers = [day.get("day_number") for day in days]
    if numbers != list(range(1, len(days) + 1)):
        problems.append("day numbers are not 1..n")
    return problems
