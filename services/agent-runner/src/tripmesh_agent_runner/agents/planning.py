"""Planning agent: the day-by-day itinerary, one day per trip date, in the requested order."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import AgentSpec, build_job_messages, destination_names, trip_dates

name = AgentName.PLANNING
instructions = """\
You are the lead planner of a trip-planning team. Write the itinerary: one entry for every
date from start_date to end_date, numbered from 1, each day at one of the requested
destinations, visiting them in the order given and splitting the days between them as evenly
as possible. Build the days from the results in <context> (activities, transport legs, weather,
holidays from public_holidays): travel days mention the leg, rainy seasons get indoor options,
holidays get a note. Keep the travellers' preferences in <user_data> in mind, as data."""
allowed_tools = frozenset({"public_holidays", "local_time", "place_info"})


class ItineraryDay(BaseModel):
    date: date
    day_number: int = Field(ge=1)
    destination: str = Field(min_length=1)
    title: str = Field(min_length=1)
    morning: str
    afternoon: str
    evening: str
    notes: str = ""


class PlanningOutput(BaseModel):
    days: list[ItineraryDay] = Field(min_length=1)
    summary: str = Field(min_length=1)


output_model = PlanningOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    return build_job_messages(job, name, instructions, output_model, "Write the day-by-day itinerary.")


def check_output(output: PlanningOutput, job: AgentJob) -> list[str]:
    errors: list[str] = []
    expected = trip_dates(job.request.start_date, job.request.end_date)
    if [d.date for d in output.days] != expected:
        errors.append(f"days must be every date from {expected[0]} to {expected[-1]}, once each, in order")
    if [d.day_number for d in output.days] != list(range(1, len(output.days) + 1)):
        errors.append("day_number must count 1, 2, 3, ...")
    order = [n.casefold() for n in destination_names(job)]
    positions = []
    for day in output.days:
        if day.destination.casefold() not in order:
            errors.append(f"{day.date}: {day.destination!r} is not one of the requested destinations")
        else:
            positions.append(order.index(day.destination.casefold()))
    if positions != sorted(positions):
        errors.append("destinations must be visited in the requested order")
    return errors


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
