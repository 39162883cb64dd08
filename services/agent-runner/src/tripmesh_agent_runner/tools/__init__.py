"""Agent tools on real, offline data. `build_tool_registry()` gives all of them."""

from __future__ import annotations

from typing import Literal

from tripmesh_agent_runner.tools import dates, geo, money
from tripmesh_agent_runner.tools.climate import OPEN_METEO_URL, OpenMeteoForecast, make_climate_tool
from tripmesh_agent_runner.tools.registry import Tool, ToolError, ToolOutcome, ToolRegistry

WeatherProvider = Literal["estimate", "open-meteo"]


def build_tool_registry(
    weather_provider: WeatherProvider = "estimate", open_meteo_url: str = OPEN_METEO_URL
) -> ToolRegistry:
    """Every tool: place_info, airports_near, distance_km, public_holidays, local_time,
    convert_currency, cost_estimates, climate_estimate. The network weather forecast is off
    unless weather_provider="open-meteo"."""
    forecast = OpenMeteoForecast(open_meteo_url) if weather_provider == "open-meteo" else None
    return ToolRegistry([*geo.TOOLS, *dates.TOOLS, *money.TOOLS, make_climate_tool(forecast)])


TOOL_NAMES = tuple(build_tool_registry().names)

__all__ = [
    "TOOL_NAMES",
    "OpenMeteoForecast",
    "Tool",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "WeatherProvider",
    "build_tool_registry",
]
