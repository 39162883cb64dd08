"""The agent tools on their real, offline data."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel
from tripmesh_agent_runner.tools import Tool, ToolRegistry
from tripmesh_agent_runner.tools.climate import estimate_month, months_between
from tripmesh_agent_runner.tools.money import rates_label


async def run(tools: ToolRegistry, name: str, **args: Any) -> Any:
    outcome = await tools.execute(name, args)
    assert outcome.ok, outcome.error
    return outcome.result


async def test_place_info_lisbon(tools: ToolRegistry) -> None:
    info = await run(tools, "place_info", place="Lisbon")
    assert (info["country_code"], info["currency"], info["timezone"], info["iata"]) == (
        "PT", "EUR", "Europe/Lisbon", "LIS",
    )  # fmt: skip
    assert info["is_capital"] and info["languages"][0] == "pt-PT"
    same = await run(tools, "place_info", geoname_id=info["geoname_id"])
    assert same["name"] == "Lisbon"


async def test_ambiguous_place_is_a_tool_error_with_candidates(tools: ToolRegistry) -> None:
    outcome = await tools.execute("place_info", {"place": "Portland"})
    assert not outcome.ok and outcome.error is not None
    assert "Portland, Maine, US" in outcome.error


async def test_distance_london_lisbon_with_travel_modes(tools: ToolRegistry) -> None:
    leg = await run(tools, "distance_km", from_place="London", to_place="Lisbon", currency="EUR")
    assert leg["distance_km"] == pytest.approx(1585, abs=15)
    modes = {m["mode"]: m for m in leg["modes"]}
    assert modes["flight"]["available"] and modes["flight"]["duration_h"] == pytest.approx(
        1585 / 800 + 2.5, abs=0.1
    )
    assert not modes["train"]["available"]  # over 1000 km
    assert modes["flight"]["currency"] == "EUR"
    assert leg["fastest"] == "flight" and rates_label() in leg["label"]


async def test_train_and_car_between_neighbouring_cities(tools: ToolRegistry) -> None:
    leg = await run(tools, "distance_km", from_place="Lisbon", to_place="Porto", travelers=4)
    modes = {m["mode"]: m for m in leg["modes"]}
    assert modes["train"]["available"] and modes["car"]["available"]
    assert modes["train"]["duration_h"] == pytest.approx(leg["distance_km"] / 120, abs=0.1)
    assert modes["car"]["duration_h"] == pytest.approx(leg["distance_km"] / 80, abs=0.1)


async def test_airports_near(tools: ToolRegistry) -> None:
    result = await run(tools, "airports_near", place="London", radius_km=60, limit=10)
    codes = {a["iata"] for a in result["airports"]}
    assert result["main_airport"] == "LHR" and {"LHR", "LGW", "LCY"} <= codes


async def test_public_holidays_portugal(tools: ToolRegistry) -> None:
    result = await run(
        tools, "public_holidays", country_code="PT", start_date="2026-11-25", end_date="2026-12-10"
    )
    assert [h["date"] for h in result["holidays"]] == ["2026-12-01", "2026-12-08"]
    missing = await tools.execute("public_holidays", {"country_code": "XX", "start_date": "2026-01-01",
                                                      "end_date": "2026-01-02"})  # fmt: skip
    assert not missing.ok and "XX" in (missing.error or "")


async def test_local_time_follows_dst(tools: ToolRegistry) -> None:
    summer = await run(tools, "local_time", place="Lisbon", at="2026-07-01T12:00:00Z")
    winter = await run(tools, "local_time", timezone="Europe/Lisbon", at="2026-01-15T12:00:00Z")
    assert (summer["utc_offset_hours"], summer["dst"]) == (1.0, True)
    assert (winter["utc_offset_hours"], winter["dst"]) == (0.0, False)


async def test_convert_currency_is_dated(tools: ToolRegistry) -> None:
    result = await run(tools, "convert_currency", amount=100, from_currency="EUR", to_currency="USD")
    assert 100 < result["converted"] < 130 and result["label"].startswith("rates as of 2026-")
    back = await run(
        tools, "convert_currency", amount=result["converted"], from_currency="USD", to_currency="EUR"
    )
    assert back["converted"] == pytest.approx(100, abs=0.02)
    unknown = await tools.execute(
        "convert_currency", {"amount": 1, "from_currency": "XYZ", "to_currency": "USD"}
    )
    assert not unknown.ok


async def test_cost_estimates_by_country_and_region(tools: ToolRegistry) -> None:
    portugal = await run(tools, "cost_estimates", country_code="PT", currency="EUR")
    switzerland = await run(tools, "cost_estimates", country_code="CH", tier="budget")
    greenland = await run(tools, "cost_estimates", country_code="GL", tier="mid")
    tiers = portugal["tiers"]
    assert (
        tiers["budget"]["lodging_per_night"]
        < tiers["mid"]["lodging_per_night"]
        < tiers["premium"]["lodging_per_night"]
    )
    assert switzerland["tiers"]["budget"]["lodging_per_night"] > 60
    assert greenland["basis"] == "region NA" and "estimate" in greenland["label"]


def test_climate_estimate_heuristic() -> None:
    lisbon_november = estimate_month(38.7, 11)
    assert 16 <= lisbon_november["avg_high_c"] <= 21 and 8 <= lisbon_november["avg_low_c"] <= 13
    assert lisbon_november["source"] == "estimate"
    # Seasons flip across the equator; the tropics barely change.
    assert estimate_month(-33.9, 1)["avg_high_c"] > estimate_month(-33.9, 7)["avg_high_c"]
    assert abs(estimate_month(1.3, 1)["avg_high_c"] - estimate_month(1.3, 7)["avg_high_c"]) < 3
    assert months_between(date(2026, 11, 27), date(2027, 1, 2)) == [11, 12, 1]


async def test_climate_tool_covers_each_month_of_the_trip(tools: ToolRegistry) -> None:
    result = await run(
        tools, "climate_estimate", place="Lisbon", start_date="2026-11-28", end_date="2026-12-03"
    )
    assert [m["month"] for m in result["months"]] == [11, 12]
    assert {m["source"] for m in result["months"]} == {"estimate"}


async def test_registry_specs_and_validation(tools: ToolRegistry) -> None:
    specs = {s["function"]["name"]: s for s in tools.specs(["distance_km", "place_info", "not_a_tool"])}
    assert set(specs) == {"distance_km", "place_info"}
    parameters = specs["distance_km"]["function"]["parameters"]
    assert parameters["type"] == "object" and "from_place" in parameters["properties"]
    bad = await tools.execute("distance_km", '{"from_place": "London", "travelers": 0}')
    assert not bad.ok and "invalid arguments" in (bad.error or "")
    assert not (await tools.execute("nope", {})).ok
    assert not (await tools.execute("place_info", "{not json")).ok


async def test_a_crashing_tool_is_reported_not_raised() -> None:
    class NoArgs(BaseModel):
        pass

    def boom(args: NoArgs) -> None:
        raise RuntimeError("kaput")

    registry = ToolRegistry([Tool("boom", "always fails", NoArgs, boom)])
    outcome = await registry.execute("boom", None)
    assert not outcome.ok and "kaput" in (outcome.error or "")
    with pytest.raises(ValueError, match="twice"):
        registry.register(Tool("boom", "again", NoArgs, boom))
