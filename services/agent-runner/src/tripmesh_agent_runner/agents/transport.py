"""Transport agent: the legs origin -> destinations (in order) -> origin, mode, time and cost."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import AgentSpec, approx_equal, build_job_messages

name = AgentName.TRANSPORT
instructions = """\
You are the transport planner of a trip-planning team. Plan the legs: from the origin (if
any) to the first destination, between destinations in the order given, and back to the
origin. For each leg call distance_km (with the trip's traveler_count and budget_currency) and
choose a mode that is available: on the "budget" tier the cheapest, otherwise the fastest
reasonable one (the train when it is within an hour of the flight). Report distance, duration
and the estimated cost per person in the trip's budget currency; totals are per person and for
all travellers."""
allowed_tools = frozenset({"distance_km", "airports_near", "place_info", "convert_currency"})


class TransportLeg(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_place: str = Field(alias="from", min_length=1)
    to_place: str = Field(alias="to", min_length=1)
    mode: Literal["flight", "train", "car", "bus", "ferry"]
    distance_km: float = Field(ge=0)
    duration_h: float = Field(ge=0)
    est_cost_per_person: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    date: str | None = None
    notes: str = ""


class TransportOutput(BaseModel):
    legs: list[TransportLeg]
    total_per_person: float = Field(ge=0)
    total: float = Field(ge=0)
    """For all travellers."""
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    summary: str = ""

    @model_validator(mode="after")
    def _totals_add_up(self) -> TransportOutput:
        if not approx_equal(self.total_per_person, sum(leg.est_cost_per_person for leg in self.legs)):
            raise ValueError("total_per_person is not the sum of the legs' est_cost_per_person")
        return self


output_model = TransportOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    return build_job_messages(job, name, instructions, output_model, "Plan how the travellers get around.")


def check_output(output: TransportOutput, job: AgentJob) -> list[str]:
    errors = []
    if output.currency != job.request.budget_currency:
        errors.append(f"currency must be the budget currency {job.request.budget_currency}")
    expected_total = output.total_per_person * job.request.traveler_count
    if not approx_equal(output.total, expected_total):
        errors.append(f"total must be total_per_person x {job.request.traveler_count} travellers")
    return errors


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
