"""Accommodation agent: nights, tier and estimated lodging cost per destination."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import (
    AgentSpec,
    Tier,
    approx_equal,
    build_job_messages,
    nights_per_destination,
)

name = AgentName.ACCOMMODATION
instructions = """\
You are the accommodation planner of a trip-planning team. The trip's days are split across
the destinations in order, as evenly as possible, and the last day is the travel-home day, so
each destination's nights are its days (minus one for the last destination). For every
destination call cost_estimates with its country, the trip's tier and budget currency, and
price one room per two travellers at the tier's lodging_per_night. On the "budget" tier
suggest hostels, guesthouses or budget hotels; rates are estimates, not quotes."""
allowed_tools = frozenset({"cost_estimates", "place_info", "convert_currency", "public_holidays"})


class Stay(BaseModel):
    destination: str = Field(min_length=1)
    nights: int = Field(ge=0)
    tier: Tier
    rooms: int = Field(default=1, ge=1)
    est_nightly_rate: float = Field(ge=0)
    """Per room and night."""
    total: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    suggestion: str = ""

    @model_validator(mode="after")
    def _total_adds_up(self) -> Stay:
        if not approx_equal(self.total, self.est_nightly_rate * self.nights * self.rooms):
            raise ValueError("total must be est_nightly_rate x nights x rooms")
        return self


class AccommodationOutput(BaseModel):
    stays: list[Stay] = Field(min_length=1)
    total: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    summary: str = ""

    @model_validator(mode="after")
    def _sum_of_stays(self) -> AccommodationOutput:
        if not approx_equal(self.total, sum(s.total for s in self.stays)):
            raise ValueError("total must be the sum of the stays")
        return self


output_model = AccommodationOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    return build_job_messages(
        job, name, instructions, output_model, "Estimate where and how the travellers stay."
    )


def check_output(output: AccommodationOutput, job: AgentJob) -> list[str]:
    request = job.request
    expected = nights_per_destination(
        request.start_date, request.end_date, [p.name for p in request.destinations]
    )
    errors: list[str] = []
    if output.currency != request.budget_currency:
        errors.append(f"currency must be the budget currency {request.budget_currency}")
    if sum(s.nights for s in output.stays) != sum(expected.values()):
        errors.append(f"the stays must add up to the trip's {sum(expected.values())} nights")
    return errors


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
