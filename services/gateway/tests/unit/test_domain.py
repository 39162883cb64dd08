"""Pure logic: idempotency hashing, ids, password policy, place resolution errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tripmesh_gateway.api.schemas import PlanCreateBody
from tripmesh_gateway.domain import (
    command_message_id,
    create_message_id,
    password_problems,
    request_hash,
    resolve_places,
)

BODY: dict[str, Any] = {
    "title": "Food in Portugal",
    "destinations": ["Lisbon", "Porto"],
    "start_date": "2027-05-01",
    "end_date": "2027-05-06",
    "budget_total": 2500,
    "preferences": {"a": 1, "b": [1, 2]},
}


def fingerprint(**overrides: Any) -> str:
    return request_hash(PlanCreateBody(**{**BODY, **overrides}).model_dump())


def test_hash_ignores_key_order_and_number_spelling() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert request_hash(PlanCreateBody(**reordered).model_dump()) == fingerprint()
    assert fingerprint(budget_total="2500.00") == fingerprint(budget_total=Decimal("2500.0"))
    assert fingerprint(preferences={"b": [1, 2], "a": 1}) == fingerprint()


def test_hash_changes_with_any_value() -> None:
    assert fingerprint(budget_total=2501) != fingerprint()
    assert fingerprint(destinations=["Porto", "Lisbon"]) != fingerprint()
    assert fingerprint(title="Food in Portugal!") != fingerprint()
    assert fingerprint(preferences={"a": 2, "b": [1, 2]}) != fingerprint()


def test_message_ids_are_deterministic_and_distinct() -> None:
    assert create_message_id("p1") == create_message_id("p1") != create_message_id("p2")
    assert command_message_id("plan.cancel", "p1", None) is None
    assert command_message_id("plan.cancel", "p1", "k") == command_message_id("plan.cancel", "p1", "k")
    assert command_message_id("plan.cancel", "p1", "k") != command_message_id("plan.decide", "p1", "k")


def test_password_policy() -> None:
    assert password_problems("a-long-enough-passphrase", "ana@example.com", "ana") == []
    assert [e.field for e in password_problems("short", "ana@example.com", "ana")] == ["password"]
    assert password_problems("ana@example.com", "ana@example.com", "ana_the_user")
    assert password_problems("Ana_The_User", "ana@example.com", "ana_the_user")
    assert password_problems("ana-example", "ana-example@example.com", "someone")  # the local part


def test_resolving_places_reports_each_bad_name_with_suggestions() -> None:
    resolved = resolve_places(["Lisbon", "Lisbn", "Portland"], "Xqzzyville")
    assert [p.name for p in resolved.destinations] == ["Lisbon"]
    errors = {e.field: e for e in resolved.errors}
    assert set(errors) == {"destinations[1]", "destinations[2]", "origin"}
    assert "Lisbon, PT" in errors["destinations[1]"].suggestions
    assert "ambiguous" in errors["destinations[2]"].message
    assert errors["destinations[2]"].as_dict()["suggestions"] == errors["destinations[2]"].suggestions


def test_resolving_good_places() -> None:
    resolved = resolve_places(["Paris", "Portland, Maine"], "London, UK")
    assert resolved.errors == []
    assert [(p.name, p.country_code) for p in resolved.destinations] == [("Paris", "FR"), ("Portland", "US")]
    assert resolved.origin is not None and resolved.origin.country_code == "GB"
