"""Resolving what a user typed ("Lisboa", "Portland, ME", "London, UK") to one real city."""

from __future__ import annotations

import difflib
import re
from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field
from tripmesh_contracts import Place

from tripmesh_places.airports import airport_index
from tripmesh_places.cities import City, CityIndex, city_index
from tripmesh_places.countries import admin1_name, country_code_for, country_info, us_state_code_for
from tripmesh_places.normalize import normalize_name

DOMINANCE = 10.0
"""A candidate wins outright when its weight is at least this many times the runner-up's
("Paris" -> Paris, FR over Paris, TX; "Portland" OR vs ME is 9.8x, so it stays ambiguous)."""
CAPITAL_WEIGHT = 5.0
"""National capitals weigh 5x their population: "Athens" means Athens, GR (5.2x Athens, GA)."""
MAX_CANDIDATES = 8
SUGGESTION_CUTOFF = 0.75
_SUBDIVISION_CODE = re.compile(r"^([A-Za-z]{2})-([A-Za-z0-9]{1,3})$")


class ResolutionStatus(StrEnum):
    RESOLVED = "resolved"
    AMBIGUOUS = "ambiguous"
    UNKNOWN = "unknown"


class PlaceCandidate(BaseModel):
    """One city a name may mean, with what a person needs to pick it."""

    model_config = ConfigDict(frozen=True)

    geoname_id: int
    name: str
    country_code: str
    country: str
    admin1_code: str
    admin1: str | None = None
    """The admin-1 name where known (US states), e.g. "Maine"."""
    population: int
    label: str
    """How to write it so it resolves: "Portland, Maine, US", "London, GB"."""


class Resolution(BaseModel):
    query: str
    status: ResolutionStatus
    place: Place | None = None
    candidates: list[PlaceCandidate] = Field(default_factory=list)
    """Ambiguous: the cities the name may mean, by weight."""
    suggestions: list[PlaceCandidate] = Field(default_factory=list)
    """Unknown: close names, or the same name outside the requested country."""

    @property
    def resolved(self) -> bool:
        return self.status is ResolutionStatus.RESOLVED


def _candidate(city: City) -> PlaceCandidate:
    info = country_info(city.country_code)
    admin1 = admin1_name(city.country_code, city.admin1_code)
    parts = [city.name, admin1, city.country_code] if admin1 else [city.name, city.country_code]
    return PlaceCandidate(
        geoname_id=city.geoname_id,
        name=city.name,
        country_code=city.country_code,
        country=info.name if info else city.country_code,
        admin1_code=city.admin1_code,
        admin1=admin1,
        population=city.population,
        label=", ".join(p for p in parts if p),
    )


@lru_cache(maxsize=4096)
def _place(geoname_id: int, index: CityIndex) -> Place | None:
    city = index.get(geoname_id)
    if city is None:
        return None
    info = country_info(city.country_code)

    def names_the_city(key: str) -> bool:
        return geoname_id in index.by_name.get(key, ()) or geoname_id in index.by_alternate_name.get(key, ())

    airport = airport_index().main_airport(city.latitude, city.longitude, city.country_code, names_the_city)
    return Place(
        geoname_id=city.geoname_id,
        name=city.name,
        country_code=city.country_code,
        country=info.name if info else city.country_code,
        latitude=city.latitude,
        longitude=city.longitude,
        timezone=city.timezone,
        population=city.population,
        currency=info.currency if info else None,
        iata=airport.iata if airport else None,
    )


def get_place(geoname_id: int) -> Place | None:
    """The Place for a geonames id (with its main airport), or None if not in the dataset."""
    return _place(geoname_id, city_index())


def _weight(city: City) -> float:
    info = country_info(city.country_code)
    capital = info is not None and normalize_name(info.capital) == normalize_name(city.name)
    return city.population * (CAPITAL_WEIGHT if capital else 1.0)


def _qualifier_matches(qualifier: str, city: City) -> bool:
    """Does "ME", "Maine", "US-ME", "Portugal" or "PT" describe this city?"""
    subdivision = _SUBDIVISION_CODE.match(qualifier.strip())
    if subdivision:
        country, admin1 = subdivision.group(1).upper(), subdivision.group(2).upper()
        return city.country_code == country and city.admin1_code.upper() == admin1
    if country_code_for(qualifier) == city.country_code:
        return True
    if city.country_code == "US" and us_state_code_for(qualifier) == city.admin1_code:
        return True
    key = normalize_name(qualifier)
    return (
        key == city.admin1_code.lower()
        or key == (admin1_name(city.country_code, city.admin1_code) or "").lower()
    )


def _matches(index: CityIndex, key: str, qualifiers: list[str]) -> tuple[list[City], list[City]]:
    """(cities that match name and qualifiers, cities that match the name only)."""
    by_name = index.cities(index.by_name.get(key, []))
    by_id = {c.geoname_id for c in by_name}
    by_alternate = [
        c for c in index.cities(index.by_alternate_name.get(key, [])) if c.geoname_id not in by_id
    ]

    def qualified(cities: list[City]) -> list[City]:
        return [c for c in cities if all(_qualifier_matches(q, c) for q in qualifiers)]

    primary, alternate = qualified(by_name), qualified(by_alternate)
    if primary:
        # An alternate spelling only competes with a city of that very name when it is far
        # bigger: "Hanover" -> Hannover, DE (515k) over Hanover, MD (38k); "Rome" stays Rome.
        floor = DOMINANCE * max(c.population for c in primary)
        matched = primary + [c for c in alternate if c.population > floor]
    else:
        matched = alternate
    return matched, by_name or by_alternate


def _close_names(index: CityIndex, key: str, qualifiers: list[str]) -> list[City]:
    names = difflib.get_close_matches(key, index.names, n=MAX_CANDIDATES, cutoff=SUGGESTION_CUTOFF)
    cities = [c for name in names for c in index.cities(index.by_name[name])]
    qualified = [c for c in cities if all(_qualifier_matches(q, c) for q in qualifiers)]
    return sorted(qualified or cities, key=_weight, reverse=True)[:MAX_CANDIDATES]


def resolve(name: str, country_hint: str | None = None) -> Resolution:
    """Resolve a place name: "Lisbon", "lisboa", "Portland, Maine", "London, UK", "Paris, FR"."""
    index = city_index()
    city_part, *qualifiers = [part.strip() for part in name.split(",")]
    qualifiers = [q for q in qualifiers if q]
    if country_hint and country_hint.strip():
        qualifiers.append(country_hint.strip())
    key = normalize_name(city_part)
    if not key:
        return Resolution(query=name, status=ResolutionStatus.UNKNOWN)
    matched, same_name = _matches(index, key, qualifiers)
    if not matched:
        nearby = same_name or _close_names(index, key, qualifiers)
        suggestions = sorted(nearby, key=_weight, reverse=True)[:MAX_CANDIDATES]
        return Resolution(
            query=name, status=ResolutionStatus.UNKNOWN, suggestions=[_candidate(c) for c in suggestions]
        )
    ranked = sorted(matched, key=_weight, reverse=True)
    if len(ranked) == 1 or _weight(ranked[0]) >= DOMINANCE * _weight(ranked[1]):
        place = _place(ranked[0].geoname_id, index)
        return Resolution(query=name, status=ResolutionStatus.RESOLVED, place=place)
    return Resolution(
        query=name,
        status=ResolutionStatus.AMBIGUOUS,
        candidates=[_candidate(c) for c in ranked[:MAX_CANDIDATES]],
    )
