"""Itinerary validation and filling: one day per date, each in a requested destination."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from tripmesh_contracts.plans import Place, PlanRequest
from tripmesh_planner.itinerary import default_destinations, itinerary_problems, normalize_itinerary


def place(name: str, geoname_id: int) -> Place:
    return Place(
        geoname_id=geoname_id,
        name=name,
        country_code="PT",
        country="Portugal",
        latitude=38.7,
        longitude=-9.1,
        timezone="Europe/Lisbon",
    )


def request(days: int = 4, names: tuple[str, ...] = ("Lisbon", "Porto")) -> PlanRequest:
    start = date(2026, 5, 1)
    return PlanRequest(
        title="Portugal",
        destinations=[place(n, i) for i, n in enumerate(names)],
        start_date=start,
        end_date=date.fromordinal(start.toordinal() + days - 1),
        budget_total=Decimal("2000"),
    )


def test_complete_itinerary_is_kept_in_date_order() -> None:
    req = request()
    raw = [
        {
            "date": f"2026-05-0{i}",
            "destination": "Lisbon" if i < 3 else "Porto",
            "title": f"T{i}",
            "morning": "m",
            "afternoon": "a",
            "evening": "e",
            "notes": "n",
        }
        for i in (4, 3, 2, 1)
    ]
    days = normalize_itinerary(raw, req)
    assert [d["date"] for d in days] == ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]
    assert [d["title"] for d in days] == ["T1", "T2", "T3", "T4"]
    assert not any(d["filled"] for d in days)
    assert itinerary_problems(days, req) == []


def test_missing_days_are_filled_and_marked() -> None:
    req = request()
    days = normalize_itinerary([{"day_number": 2, "destination": "Lisbon", "title": "Belem"}], req)
    assert [d["filled"] for d in days] == [True, False, True, True]
    assert days[1]["title"] == "Belem"
    assert days[0]["title"] == "Day 1 in Lisbon"
    assert days[3]["destination"] == "Porto"
    assert itinerary_problems(days, req) == []


def test_unknown_places_days_outside_the_trip_and_junk_are_repaired() -> None:
    req = request(days=2)
    raw = [
        {"date": "2026-05-01", "destination": "Atlantis", "title": "Myth"},
        {"date": "2026-05-01", "destination": "Porto", "title": "Second copy of day 1"},
        {"date": "2026-06-30", "destination": "Porto", "title": "After the trip"},
        "not a day",
        {"day_number": 2, "destination": "Porto, Portugal", "morning": ["Ribeira", "Bolhao"]},
    ]
    days = normalize_itinerary(raw, req)
    assert days[0]["title"] == "Myth" and days[0]["destination"] == "Lisbon"
    assert days[1]["destination"] == "Porto" and days[1]["morning"] == "Ribeira; Bolhao"
    assert itinerary_problems(days, req) == []


def test_not_a_list_gives_a_filled_itinerary() -> None:
    req = request(days=3, names=("Lisbon",))
    days = normalize_itinerary({"oops": 1}, req)
    assert len(days) == 3 and all(d["filled"] for d in days)


def test_problems_are_reported() -> None:
    req = request(days=2)
    bad = [{"date": "2026-05-01", "day_number": 1, "destination": "Madrid"}]
    problems = itinerary_problems(bad, req)
    assert any("do not cover" in p for p in problems)
    assert any("Madrid" in p for p in problems)


def test_default_destinations_split_in_request_order() -> None:
    assert default_destinations(request(days=5, names=("A", "B"))) == ["A", "A", "A", "B", "B"]
    assert default_destinations(request(days=1, names=("A", "B", "C"))) == ["A"]


@given(
    days=st.integers(1, 40),
    n_places=st.integers(1, 5),
    raw=st.lists(
        st.fixed_dictionaries(
            {"day_number": st.integers(-3, 50), "destination": st.sampled_from(["P0", "P1", "Nowhere"])}
        ),
        max_size=60,
    ),
)
def test_any_agent_output_gives_a_valid_itinerary(
    days: int,
    n_places: int,
    raw: list[dict[str, object]],
) -> None:
    req = request(days=days, names=tuple(f"P{i}" for i in range(n_places)))
    result = normalize_itinerary(raw, req)
    assert itinerary_problems(result, req) == []
