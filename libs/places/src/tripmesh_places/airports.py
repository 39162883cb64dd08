"""Airports with an IATA code (airportsdata) and the choice of a city's main airport."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import airportsdata
from pydantic import BaseModel, ConfigDict

from tripmesh_places.geo import great_circle_km
from tripmesh_places.normalize import normalize_name

MAIN_AIRPORT_RADIUS_KM = 60.0
"""How far from a city centre its main airport may be (Paris CDG 23 km, Milan MXP 40 km)."""

# airportsdata has no traffic or size figures, so for the metropolitan areas with several
# airports this curated list of major hubs breaks the tie (London -> LHR, not LCY or LTN).
MAJOR_HUBS = frozenset(
    {
        "LHR", "CDG", "JFK", "FCO", "MXP", "HND", "ARN", "ORD", "SVO", "IST", "BER", "BRU", "GRU",
        "EZE", "YYZ", "YUL", "PEK", "PVG", "ICN", "KIX", "BKK", "CGK", "GIG", "MEL", "DXB", "DFW",
        "IAH", "TPE", "IAD", "WAW", "OSL", "AMS", "MAD", "BCN", "FRA", "MUC", "ZRH", "VIE", "CPH",
        "HEL", "DUB", "ATH", "LIS", "PRG", "BUD", "SYD", "AKL", "JNB", "CPT", "CAI", "DEL", "BOM",
        "SIN", "HKG", "KUL", "MNL", "MEX", "BOG", "LIM", "SCL", "LAX", "SFO", "SEA", "BOS", "MIA",
        "ATL", "YVR", "DEN", "TLV", "DOH", "AUH",
    }
)  # fmt: skip
# Still listed in airportsdata but closed to passenger traffic.
CLOSED = frozenset({"TXL", "THF"})
_NOT_AN_AIRPORT = re.compile(
    r"\b(heliport|helipad|seaplane|air ?base|afb|raf|naval|army|air force|military|station|"
    r"railway|rail|bus|skyports?|hospital)\b",
    re.IGNORECASE,
)
_CITY_SEPARATORS = re.compile(r"[,/]")
_INTERNATIONAL = re.compile(r"\b(international|intl|intcntl|intercontinental)\b", re.IGNORECASE)


class Airport(BaseModel):
    model_config = ConfigDict(frozen=True)

    iata: str
    icao: str
    name: str
    city: str
    subdivision: str
    country_code: str
    latitude: float
    longitude: float
    timezone: str
    distance_km: float | None = None
    """Distance from the point it was looked up from, when it was found by proximity."""


_MINOR = re.compile(
    r"\b(municipal|regional|county|field|airpark|airstrip|aerodrome|executive)\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class _Row:
    iata: str
    row: dict[str, Any]
    latitude: float
    longitude: float
    international: bool
    minor: bool
    city_keys: frozenset[str]

    def airport(self, distance_km: float | None = None) -> Airport:
        row = self.row
        return Airport(
            iata=self.iata,
            icao=row["icao"],
            name=row["name"],
            city=row["city"],
            subdivision=row["subd"],
            country_code=row["country"],
            latitude=self.latitude,
            longitude=self.longitude,
            timezone=row["tz"],
            distance_km=None if distance_km is None else round(distance_km, 1),
        )


class AirportIndex:
    """Passenger airports with IATA codes, bucketed by whole degree of latitude."""

    def __init__(self) -> None:
        self._by_iata: dict[str, _Row] = {}
        self._by_lat_band: dict[int, list[_Row]] = {}
        for code, row in airportsdata.load("IATA").items():
            name = row["name"]
            if code in CLOSED or _NOT_AN_AIRPORT.search(name):
                continue
            # "Arnavutköy, Istanbul" and "Stockholm / Nykoping" serve each named city.
            city_keys = frozenset(normalize_name(p) for p in _CITY_SEPARATORS.split(row["city"]) if p.strip())
            entry = _Row(
                iata=code,
                row=dict(row),
                latitude=float(row["lat"]),
                longitude=float(row["lon"]),
                international=bool(_INTERNATIONAL.search(name)),
                minor=bool(_MINOR.search(name)),
                city_keys=city_keys,
            )
            self._by_iata[code] = entry
            self._by_lat_band.setdefault(math.floor(entry.latitude), []).append(entry)

    def by_iata(self, code: str) -> Airport | None:
        entry = self._by_iata.get(code.strip().upper())
        return None if entry is None else entry.airport()

    def _rows_near(self, latitude: float, longitude: float, radius_km: float) -> list[tuple[float, _Row]]:
        bands = math.ceil(radius_km / 111.0)
        base = math.floor(latitude)
        found: list[tuple[float, _Row]] = []
        for band in range(base - bands, base + bands + 1):
            for entry in self._by_lat_band.get(band, ()):
                distance = great_circle_km((latitude, longitude), (entry.latitude, entry.longitude))
                if distance <= radius_km:
                    found.append((distance, entry))
        found.sort(key=lambda pair: pair[0])
        return found

    def near(
        self, latitude: float, longitude: float, radius_km: float = 100.0, limit: int = 5
    ) -> list[Airport]:
        """Airports within radius_km, nearest first."""
        return [entry.airport(d) for d, entry in self._rows_near(latitude, longitude, radius_km)[:limit]]

    def main_airport(
        self, latitude: float, longitude: float, country_code: str, names_the_city: Callable[[str], bool]
    ) -> Airport | None:
        """The airport most likely meant by "fly to <city>": within 60 km and in the same country,
        preferring (in order) a major hub named for the city, an international airport named for
        the city, a major hub, a non-minor airport named for the city (Cologne -> CGN, not DUS),
        any international airport, any airport named for the city, then the nearest."""
        best: tuple[tuple[bool, ...], float, _Row] | None = None
        for distance, entry in self._rows_near(latitude, longitude, MAIN_AIRPORT_RADIUS_KM):
            if entry.row["country"] != country_code:
                continue
            serves_city = any(names_the_city(key) for key in entry.city_keys)
            hub = entry.iata in MAJOR_HUBS
            rank = (
                serves_city and hub,
                serves_city and entry.international,
                hub,
                serves_city and not entry.minor,
                entry.international,
                serves_city,
            )
            if best is None or rank > best[0] or (rank == best[0] and distance < best[1]):
                best = (rank, distance, entry)
        return None if best is None else best[2].airport(best[1])


_lock = threading.Lock()
_index: AirportIndex | None = None


def airport_index() -> AirportIndex:
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = AirportIndex()
    return _index


def airports_near(
    latitude: float, longitude: float, radius_km: float = 100.0, limit: int = 5
) -> list[Airport]:
    return airport_index().near(latitude, longitude, radius_km, limit)


def airport_by_iata(code: str) -> Airport | None:
    return airport_index().by_iata(code)
