"""Pure gateway logic: password policy, idempotency hashing, message ids, place resolution
errors and the view of a plan the planner has not seen yet. No I/O here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from tripmesh_contracts import Place, PlanRequest, PlanStatus, stable_id
from tripmesh_places import Resolution, all_countries, resolve

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
"""argon2 hashes anything, but an unbounded password is a cheap way to burn our CPU."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one request field, as it appears in a problem+json `errors` list."""

    field: str
    message: str
    suggestions: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.suggestions:
            out["suggestions"] = self.suggestions
        return out


def password_problems(password: str, email: str, username: str) -> list[FieldError]:
    """The password policy: long enough, and not simply the account's own name or e-mail."""
    errors = []
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(FieldError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters"))
    if len(password) > MAX_PASSWORD_LENGTH:
        errors.append(FieldError("password", f"must be at most {MAX_PASSWORD_LENGTH} characters"))
    lowered = password.strip().casefold()
    local_part = email.split("@", 1)[0].casefold()
    if lowered in {email.casefold(), username.casefold(), local_part}:
        errors.append(FieldError("password", "must not be your e-mail address or username"))
    return errors


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # 2500, 2500.0 and 2500.00 are one amount: normalise away the exponent.
        return format(value.normalize(), "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, one form per number or date."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def request_hash(body: dict[str, Any]) -> str:
    """Fingerprint of a create request (as validated, python mode) for Idempotency-Key checks.

    Hashing the validated body rather than the raw bytes means key order, whitespace and
    `2500` vs `"2500.00"` do not make a retry look like a different request."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def create_message_id(plan_id: str) -> str:
    """The PlanCreate message id: deterministic, so a re-publish is de-duplicated."""
    return stable_id("gateway", "plan.create", plan_id)


def command_message_id(kind: str, plan_id: str, idempotency_key: str | None) -> str | None:
    """Id for revise/cancel/decide/delete: stable when the client sent an Idempotency-Key
    (its retry must not become a second command), otherwise left to the envelope."""
    if idempotency_key is None:
        return None
    return stable_id("gateway", kind, plan_id, idempotency_key)


@cache
def known_currencies() -> frozenset[str]:
    """ISO 4217 codes in use by some country (geonames), e.g. USD, EUR, JPY."""
    return frozenset(c.currency for c in all_countries() if c.currency)


def resolution_error(field_name: str, resolution: Resolution) -> FieldError | None:
    """None when the name resolved to one city; else the 422 entry with what to write instead."""
    if resolution.resolved:
        return None
    if resolution.candidates:
        labels = [c.label for c in resolution.candidates]
        return FieldError(
            field_name,
            f"'{resolution.query}' is ambiguous; add a region or country, e.g. '{labels[0]}'",
            labels,
        )
    labels = [c.label for c in resolution.suggestions]
    hint = f"; did you mean '{labels[0]}'?" if labels else ""
    return FieldError(field_name, f"unknown place '{resolution.query}'{hint}", labels)


@dataclass(frozen=True)
class ResolvedPlaces:
    destinations: list[Place]
    origin: Place | None
    errors: list[FieldError]


def resolve_places(destinations: list[str] | None, origin: str | None) -> ResolvedPlaces:
    """Resolve every destination and the origin; collect an error per unresolvable name."""
    places: list[Place] = []
    errors: list[FieldError] = []
    for index, name in enumerate(destinations or []):
        result = resolve(name)
        error = resolution_error(f"destinations[{index}]", result)
        if error:
            errors.append(error)
        elif result.place is not None:
            places.append(result.place)
    origin_place = None
    if origin is not None:
        result = resolve(origin)
        error = resolution_error("origin", result)
        if error:
            errors.append(error)
        origin_place = result.place
    return ResolvedPlaces(places, origin_place, errors)


def place_label(place: Place) -> str:
    return place.name


def accepted_view(
    *, plan_id: str, user_id: str, request: PlanRequest, created_at: datetime
) -> dict[str, Any]:
    """What GET shows for a plan the gateway accepted but the planner has not stored yet:
    status processing, version 1, the request as sent (PlanView's fields)."""
    return {
        "id": plan_id,
        "user_id": user_id,
        "title": request.title,
        "description": request.description,
        "destinations": [place_label(p) for p in request.destinations],
        "origin": place_label(request.origin) if request.origin else None,
        "start_date": request.start_date,
        "end_date": request.end_date,
        "budget_total": request.budget_total,
        "budget_currency": request.budget_currency,
        "traveler_count": request.traveler_count,
        "preferences": request.preferences,
        "constraints": request.constraints,
        "status": PlanStatus.PROCESSING,
        "version": 1,
        "completion_percentage": 0,
        "plan_data": {},
        "agent_results": {},
        "status_reason": None,
        "created_at": created_at,
        "updated_at": created_at,
        "completed_at": None,
    }
