"""Pure mapping from a plan change to what vector-sync stores: texts, point ids, payloads.

Everything here is deterministic (no clock, no randomness): a rebuild from PLAN_CHANGES must
end with exactly the points the live consumer wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from tripmesh_contracts.ids import stable_id
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot

# --- point ids ---------------------------------------------------------------------------


def plan_point_id(plan_id: str) -> str:
    """One point per plan: a UUID5 of the plan id (Qdrant ids are UUIDs or integers)."""
    return stable_id("vector-sync", "plan", plan_id)


def location_point_id(name: str, country: str) -> str:
    return stable_id("vector-sync", "location", name.casefold(), country.casefold())


def preference_point_id(plan_id: str, key: str) -> str:
    return stable_id("vector-sync", "preference", plan_id, key)


# --- plan text and payload ---------------------------------------------------------------


def country_key(country: str) -> str:
    """What the `countries` payload holds and the country filter compares: case-folded."""
    return " ".join(country.split()).casefold()


def preference_lines(preferences: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, readable text) per stated preference; empty values dropped, keys sorted."""
    lines: list[tuple[str, str]] = []
    for key in sorted(preferences):
        words = _flatten(preferences[key])
        label = key.replace("_", " ").strip()
        if words == ["true"]:
            lines.append((key, label))
        elif words and words != ["false"]:
            lines.append((key, f"{label}: {', '.join(words)}"))
    return lines


def _flatten(value: Any) -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dict):
        return [
            f"{k.replace('_', ' ')} {' '.join(_flatten(v))}".strip()
            for k, v in sorted(value.items())
            if _flatten(v)
        ]
    if isinstance(value, list | tuple | set):
        return [word for item in value for word in _flatten(item)]
    return [str(value).strip()]


def _month_span(start: str, end: str) -> str:
    """Month words ("May 2026", "May 2026 to June 2026") an embedder relates to queries."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        return ""
    days = (last - first).days + 1
    if (first.year, first.month) == (last.year, last.month):
        months = f"{first:%B %Y}"
    else:
        months = f"{first:%B %Y} to {last:%B %Y}"
    return f"{months}, {days} days" if days > 0 else months


def plan_text(snapshot: PlanSnapshot) -> str:
    """What gets embedded for a plan: title, description, destinations, dates, summary and
    stated preferences. No field labels: with averaged word embeddings, a label shared by
    every plan only pulls all vectors together."""
    places = ", ".join(snapshot.destinations)
    if snapshot.countries:
        places = f"{places} ({', '.join(snapshot.countries)})"
    parts = [
        snapshot.title,
        snapshot.description or "",
        places,
        f"{snapshot.start_date} to {snapshot.end_date}",
        _month_span(snapshot.start_date, snapshot.end_date),
        snapshot.summary,
        "; ".join(text for _, text in preference_lines(snapshot.preferences)),
    ]
    return ". ".join(part.strip().rstrip(".") for part in parts if part and part.strip())


def plan_payload(change: PlanChanged, snapshot: PlanSnapshot) -> dict[str, Any]:
    return {
        "user_id": change.user_id,
        "plan_id": change.plan_id,
        "version": change.version,
        "title": snapshot.title,
        "destinations": list(snapshot.destinations),
        "countries": sorted({country_key(c) for c in snapshot.countries}),
        "country_names": list(snapshot.countries),
        "start_date": snapshot.start_date,
        "end_date": snapshot.end_date,
        "budget_total": float(snapshot.budget_total),
        "budget_currency": snapshot.budget_currency,
        "status": snapshot.status.value,
        "summary": snapshot.summary,
        "preferences": snapshot.model_dump(mode="json")["preferences"],
        "changed_at": change.occurred_at.isoformat(),
    }


# --- locations and preferences -----------------------------------------------------------


@dataclass(frozen=True)
class Location:
    name: str
    country: str
    """"" when the plan spans several countries and none could be matched to the place."""

    @property
    def text(self) -> str:
        return f"{self.name}, {self.country}" if self.country else self.name


CountryResolver = Callable[[str, list[str]], str | None]
"""(place name, the plan's countries) -> which of them the place is in, if known."""


def plan_locations(snapshot: PlanSnapshot, resolve_country: CountryResolver) -> list[Location]:
    """The plan's destinations paired with their country, de-duplicated.

    The snapshot lists destination names and the set of countries separately. One country:
    every place is in it. "Porto, Portugal": the name says it. Several countries: ask
    `resolve_country` (the places library), else the country stays unknown.
    """
    found: dict[tuple[str, str], Location] = {}
    for raw in snapshot.destinations:
        name, _, named_country = (part.strip() for part in raw.partition(","))
        if not name:
            continue
        if named_country:
            country = named_country
        elif len(snapshot.countries) == 1:
            country = snapshot.countries[0]
        elif snapshot.countries:
            country = resolve_country(name, list(snapshot.countries)) or ""
        else:
            country = ""
        location = Location(name, country)
        found.setdefault((name.casefold(), country.casefold()), location)
    return list(found.values())


def no_resolver(_: str, __: list[str]) -> str | None:
    return None


# --- matched fields of a hit -------------------------------------------------------------

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_STOPWORDS = frozenset(["and", "the", "for", "with", "from", "into", "trip", "plan", "plans", "days", "day"])


def query_terms(q: str) -> set[str]:
    return {w for w in (m.casefold() for m in _WORD.findall(q)) if w not in _STOPWORDS}


def matched_terms(payload: dict[str, Any], terms: Iterable[str]) -> dict[str, list[str]]:
    """Which query words appear in which payload field (explains a hit; not its score)."""
    wanted = set(terms)
    fields = {
        "title": payload.get("title", ""),
        "destinations": " ".join(payload.get("destinations", [])),
        "countries": " ".join(payload.get("country_names", [])),
        "summary": payload.get("summary", ""),
        "preferences": " ".join(t for _, t in preference_lines(payload.get("preferences") or {})),
    }
    matched: dict[str, list[str]] = {}
    for field, text in fields.items():
        present = sorted(wanted & {w.casefold() for w in _WORD.findall(str(text))})
        if present:
            matched[field] = present
    return matched


def shared_fields(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, list[str]]:
    """What a similar plan has in common with the reference plan."""
    shared: dict[str, list[str]] = {}
    for field in ("destinations", "country_names"):
        mine = {str(v).casefold(): str(v) for v in reference.get(field, [])}
        common = sorted(mine[k] for k in {str(v).casefold() for v in other.get(field, [])} & mine.keys())
        if common:
            shared["countries" if field == "country_names" else field] = common
    if reference.get("status") and reference.get("status") == other.get("status"):
        shared["status"] = [str(other["status"])]
    return shared
