"""Location agent: facts about each destination (country, currency, time zone, airport...)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import AgentSpec, build_job_messages, destination_names

name = AgentName.LOCATION
instructions = """\
You are the location researcher of a trip-planning team. For every destination in <trip>,
look up the facts with place_info (country, currency, time zone, population, coordinates,
languages, main airport), public holidays during the trip with public_holidays, and the time
zone with local_time when useful. Write a few short, factual highlights per destination from
what the tools returned (capital city, main airport, holidays during the stay)."""
allowed_tools = frozenset({"place_info", "public_holidays", "local_time"})


class Holiday(BaseModel):
    date: str
    name: str


class DestinationFacts(BaseModel):
    name: str = Field(min_length=1)
    country: str
    country_code: str = Field(min_length=2, max_length=2)
    currency: str | None = None
    timezone: str
    population: int = Field(ge=0)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    iata: str | None = None
    languages: list[str] = Field(default_factory=list)
    highlights: list[str] = Field(default_factory=list)
    holidays_during_trip: list[Holiday] = Field(default_factory=list)


class LocationOutput(BaseModel):
    destinations: list[DestinationFacts] = Field(min_length=1)
    summary: str = ""


output_model = LocationOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    return build_job_messages(
        job, name, instructions, output_model, "Research every destination of this trip."
    )


def check_output(output: LocationOutput, job: AgentJob) -> list[str]:
    covered = {d.name.casefold() for d in output.destinations}
    return [f"destination {n!r} missing" for n in destination_names(job) if n.casefold() not in covered]


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
