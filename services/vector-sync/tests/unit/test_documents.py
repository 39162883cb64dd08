"""Pure mapping of a plan change to texts, ids and payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_contracts.plans import PlanStatus
from tripmesh_vector_sync.documents import (
    Location,
    location_point_id,
    matched_terms,
    no_resolver,
    plan_locations,
    plan_payload,
    plan_point_id,
    plan_text,
    preference_lines,
    query_terms,
    shared_fields,
)


def snap(**overrides: Any) -> PlanSnapshot:
    values: dict[str, Any] = {
        "title": "Food week",
        "description": "Eating our way north",
        "destinations": ["Lisbon", "Porto"],
        "countries": ["Portugal"],
        "start_date": "2026-05-30",
        "end_date": "2026-06-02",
        "budget_total": Decimal("1800.50"),
        "budget_currency": "EUR",
        "status": PlanStatus.COMPLETED,
        "summary": "Seafood and pastries.",
        "preferences": {"cuisine": ["seafood", "pastries"], "vegetarian": False, "slow_pace": True},
    }
    return PlanSnapshot(**{**values, **overrides})


def test_plan_text_holds_every_embedded_field_without_labels() -> None:
    text = plan_text(snap())
    for part in (
        "Food week",
        "Eating our way north",
        "Lisbon, Porto (Portugal)",
        "2026-05-30 to 2026-06-02",
        "May 2026 to June 2026, 4 days",
        "Seafood and pastries",
        "cuisine: seafood, pastries",
        "slow pace",
    ):
        assert part in text
    assert "vegetarian" not in text  # a preference set to false is not a stated preference
    assert "Destinations:" not in text


def test_preference_lines_flatten_nested_values_and_drop_empty_ones() -> None:
    lines = preference_lines(
        {
            "b_list": ["x", {"k": "v"}],
            "a_flag": True,
            "empty": [],
            "none": None,
            "nested": {"inner_key": ["p", "q"]},
        }
    )
    assert lines == [("a_flag", "a flag"), ("b_list", "b list: x, k v"), ("nested", "nested: inner key p q")]


def test_payload_is_deterministic_and_searchable() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    change = PlanChanged(user_id="u1", plan_id="p1", version=4, occurred_at=at, snapshot=snap())
    payload = plan_payload(change, snap())
    assert payload == plan_payload(change, snap())
    assert payload["countries"] == ["portugal"] and payload["country_names"] == ["Portugal"]
    assert payload["budget_total"] == 1800.5 and payload["status"] == "completed"
    assert (payload["user_id"], payload["plan_id"], payload["version"]) == ("u1", "p1", 4)
    assert payload["changed_at"] == at.isoformat()


def test_point_ids_are_stable_uuids_distinct_per_thing() -> None:
    assert plan_point_id("p1") == plan_point_id("p1") != plan_point_id("p2")
    assert location_point_id("Lisbon", "Portugal") == location_point_id("LISBON", "portugal")
    assert location_point_id("Lisbon", "Portugal") != plan_point_id("p1")


def test_locations_pair_places_with_their_country() -> None:
    one_country = plan_locations(snap(destinations=["Lisbon", "lisbon", "Porto"]), no_resolver)
    assert one_country == [Location("Lisbon", "Portugal"), Location("Porto", "Portugal")]

    named = plan_locations(
        snap(destinations=["Porto, Portugal", "Vigo"], countries=["Portugal", "Spain"]),
        lambda name, countries: "Spain" if name == "Vigo" else None,
    )
    assert named == [Location("Porto", "Portugal"), Location("Vigo", "Spain")]

    unknown = plan_locations(snap(destinations=["Nowhere"], countries=["Portugal", "Spain"]), no_resolver)
    assert unknown == [Location("Nowhere", "")] and unknown[0].text == "Nowhere"


def test_matched_terms_explain_a_hit_per_field() -> None:
    change = PlanChanged(user_id="u1", plan_id="p1", version=1, snapshot=snap())
    payload = plan_payload(change, snap())
    terms = query_terms("Lisbon and Porto food trip with seafood")
    assert "and" not in terms and "trip" not in terms
    assert matched_terms(payload, terms) == {
        "title": ["food"],
        "destinations": ["lisbon", "porto"],
        "summary": ["seafood"],
        "preferences": ["seafood"],
    }


def test_shared_fields_of_a_similar_plan() -> None:
    mine = {"destinations": ["Lisbon", "Porto"], "country_names": ["Portugal"], "status": "completed"}
    other = {"destinations": ["porto", "Faro"], "country_names": ["Portugal"], "status": "partial"}
    assert shared_fields(mine, other) == {"destinations": ["Porto"], "countries": ["Portugal"]}
