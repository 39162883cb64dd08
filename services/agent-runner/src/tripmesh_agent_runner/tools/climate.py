"""Weather for a trip: a latitude/month climate estimate (default, offline), or optionally a
daily forecast from an Open-Meteo-compatible API when the dates are close enough to forecast.

The estimate is a deliberately simple, documented heuristic, always labelled "estimate":
  mean temperature  T(lat)   = 28 - 0.0067 * lat^2               (deg C; ~28 at the equator,
                                                                  ~18 at Lisbon, ~10 at London)
  seasonal swing    A(lat)   = clamp(0.2 * |lat| - 1.5, 1, 15)    (half the July-January spread)
  month m           T(lat,m) = T(lat) + A(lat) * cos(2pi (m - peak) / 12), peak = July north,
                                                                  January south
  highs / lows      T +/- 4                                       (a typical 8 deg diurnal range)
  rainy days        by latitude band, wetter in winter at mid latitudes (Mediterranean pattern)
                    and in summer in the outer tropics (monsoon pattern).
It ignores altitude, coasts and continents: good enough to pack a bag, not to plan a wedding.
"""

from __future__ import annotations

import math
from calendar import month_name
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts import Place

from tripmesh_agent_runner.tools.geo import find_place
from tripmesh_agent_runner.tools.registry import Tool

DIURNAL_RANGE_C = 8.0
OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
FORECAST_HORIZON_DAYS = 16
"""Open-Meteo forecasts up to 16 days ahead; later trips fall back to the estimate."""
RAIN_DAY_MM = 1.0
Source = Literal["estimate", "forecast"]


def _seasonal(month: int, peak_month: int) -> float:
    return math.cos(2 * math.pi * (month - peak_month) / 12)


def _rain_days(latitude: float, month: int) -> float:
    north = latitude >= 0
    winter = _seasonal(month, 1 if north else 7)
    summer = -winter
    band = abs(latitude)
    if band < 10:
        return 14.0
    if band < 23.5:
        return 6 + 6 * summer
    if band < 35:
        return 4 + 2 * winter
    if band < 45:
        return 7 + 5 * winter
    if band < 60:
        return 12 + 2 * winter
    return 11.0


def _summary(high: float, low: float, rain_days: float, source: Source) -> str:
    feel = (
        "hot"
        if high >= 28
        else "warm"
        if high >= 22
        else "mild"
        if high >= 15
        else "cool"
        if high >= 8
        else "cold"
    )
    rain = "mostly dry" if rain_days < 4 else "some rain" if rain_days < 10 else "often rainy"
    word = "forecast" if source == "forecast" else "est."
    return (
        f"{feel.capitalize()}, {rain} ({word} {round(rain_days)} rainy days); "
        f"highs around {round(high)}°C, lows around {round(low)}°C"
    )


def estimate_month(latitude: float, month: int) -> dict[str, Any]:
    mean = 28 - 0.0067 * latitude**2
    swing = min(15.0, max(1.0, 0.2 * abs(latitude) - 1.5))
    temperature = mean + swing * _seasonal(month, 7 if latitude >= 0 else 1)
    high, low = temperature + DIURNAL_RANGE_C / 2, temperature - DIURNAL_RANGE_C / 2
    rain = _rain_days(latitude, month)
    return {
        "month": month,
        "month_name": month_name[month],
        "avg_high_c": round(high, 1),
        "avg_low_c": round(low, 1),
        "rain_days": round(rain),
        "summary": _summary(high, low, rain, "estimate"),
        "source": "estimate",
    }


def months_between(start: date, end: date) -> list[int]:
    months: list[int] = []
    cursor = start.replace(day=1)
    while cursor <= end and len(months) < 12:
        months.append(cursor.month)
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return months


class OpenMeteoForecast:
    """Daily forecasts from an Open-Meteo-format API (keyless). Off unless configured."""

    def __init__(self, base_url: str = OPEN_METEO_URL, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds

    async def daily(self, place: Place, start: date, end: date) -> list[dict[str, Any]]:
        params: dict[str, str | float] = {
            "latitude": place.latitude,
            "longitude": place.longitude,
            "daily": "temperature_2m_max,temperature_2m_min,precipitation_sum",
            "timezone": place.timezone,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }
        # A client per request: the provider is rarely used, and one shared pool degrades
        # under concurrency (ARCHITECTURE.md section 4).
        async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
            response = await client.get(self.base_url, params=params)
            response.raise_for_status()
            daily = response.json()["daily"]
        columns = zip(
            daily["time"],
            daily["temperature_2m_max"],
            daily["temperature_2m_min"],
            daily["precipitation_sum"],
            strict=True,
        )
        return [
            {"date": day, "high_c": high, "low_c": low, "precipitation_mm": rain}
            for day, high, low, rain in columns
            if high is not None and low is not None
        ]


def _forecast_month(month: int, days: list[dict[str, Any]]) -> dict[str, Any]:
    high = sum(d["high_c"] for d in days) / len(days)
    low = sum(d["low_c"] for d in days) / len(days)
    rain_days = sum(1 for d in days if (d["precipitation_mm"] or 0) >= RAIN_DAY_MM)
    return {
        "month": month,
        "month_name": month_name[month],
        "avg_high_c": round(high, 1),
        "avg_low_c": round(low, 1),
        "rain_days": rain_days,
        "summary": _summary(high, low, rain_days, "forecast") + f" over {len(days)} forecast days",
        "source": "forecast",
        "days": days,
    }


class ClimateArgs(BaseModel):
    place: str | None = Field(default=None, description="City name")
    geoname_id: int | None = None
    month: int | None = Field(default=None, ge=1, le=12, description="Month 1-12 (or give dates)")
    start_date: date | None = None
    end_date: date | None = None

    @model_validator(mode="after")
    def _when(self) -> ClimateArgs:
        if self.place is None and self.geoname_id is None:
            raise ValueError("give place or geoname_id")
        if self.month is None and (self.start_date is None or self.end_date is None):
            raise ValueError("give month, or start_date and end_date")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date before start_date")
        return self


def _group_by_month(days: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for day in days:
        grouped.setdefault(date.fromisoformat(day["date"]).month, []).append(day)
    return grouped


def make_climate_tool(forecast: OpenMeteoForecast | None = None, today: date | None = None) -> Tool:
    """The `climate_estimate` tool; with `forecast`, months the forecast window covers use it."""

    async def climate_estimate(args: ClimateArgs) -> dict[str, Any]:
        place = find_place(args.place, args.geoname_id)
        months = [args.month] if args.month else months_between(args.start_date, args.end_date)  # type: ignore[arg-type]
        entries = {m: estimate_month(place.latitude, m) for m in months}
        note = "estimate from latitude and month (see tool docs)"
        if forecast is not None and args.start_date and args.end_date:
            first_day = today or date.today()
            window_end = first_day + timedelta(days=FORECAST_HORIZON_DAYS - 1)
            start, end = max(args.start_date, first_day), min(args.end_date, window_end)
            if start <= end:
                try:
                    days = await forecast.daily(place, start, end)
                    for month, month_days in _group_by_month(days).items():
                        entries[month] = _forecast_month(month, month_days)
                    note = "forecast where the dates are within the forecast window, estimate elsewhere"
                except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
                    note = f"forecast unavailable ({type(exc).__name__}); estimate from latitude and month"
        return {
            "place": place.name,
            "country_code": place.country_code,
            "months": list(entries.values()),
            "note": note,
        }

    return Tool(
        name="climate_estimate",
        description=(
            "Typical weather for a city in a month or date range: average high/low (deg C), rainy days, "
            "summary, and whether it is an estimate or a forecast."
        ),
        args_model=ClimateArgs,
        func=climate_estimate,
    )
