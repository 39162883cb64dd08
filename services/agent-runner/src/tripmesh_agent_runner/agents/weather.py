"""Weather agent: typical (or forecast) weather per destination for the months of the trip."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import AgentSpec, build_job_messages, destination_names

name = AgentName.WEATHER
instructions = """\
You are the weather researcher of a trip-planning team. For every destination in <trip>, call
climate_estimate with the destination and the trip's start_date and end_date. Report, per
destination and month, the average high and low in deg C, the rainy days, a one-line summary,
and the source exactly as the tool gave it ("estimate" or "forecast"). Add a few packing tips."""
allowed_tools = frozenset({"climate_estimate", "place_info"})


class MonthWeather(BaseModel):
    destination: str = Field(min_length=1)
    month: int = Field(ge=1, le=12)
    avg_high_c: float = Field(ge=-60, le=60)
    avg_low_c: float = Field(ge=-70, le=50)
    rain_days: int = Field(ge=0, le=31)
    summary: str
    source: Literal["estimate", "forecast"]

    @model_validator(mode="after")
    def _low_not_above_high(self) -> MonthWeather:
        if self.avg_low_c > self.avg_high_c:
            raise ValueError("avg_low_c above avg_high_c")
        return self


class WeatherOutput(BaseModel):
    destinations: list[MonthWeather] = Field(min_length=1)
    packing_tips: list[str] = Field(default_factory=list)


output_model = WeatherOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    task = "Describe the weather at every destination for the dates of this trip."
    return build_job_messages(job, name, instructions, output_model, task)


def check_output(output: WeatherOutput, job: AgentJob) -> list[str]:
    covered = {w.destination.casefold() for w in output.destinations}
    return [f"destination {n!r} missing" for n in destination_names(job) if n.casefold() not in covered]


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
