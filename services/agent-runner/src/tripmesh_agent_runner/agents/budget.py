"""Budget agent: adds up the options (transport, stays, activities, food) against the budget.

The planner loops the options stage on `within_budget` / `overrun`, so those two are derived
from the totals by the schema itself rather than trusted from the model's arithmetic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator
from tripmesh_contracts import AgentJob, AgentName

from tripmesh_agent_runner.agents.common import AgentSpec, approx_equal, build_job_messages

name = AgentName.BUDGET
instructions = """\
You are the budget checker of a trip-planning team. Add up the estimated costs in <context>:
transport "total", accommodation "total", activity "total", and food: call cost_estimates for
each destination's country with the trip's tier and budget currency and count food_per_day
per traveller per day spent there. Convert any figure not in the budget currency with
convert_currency. Compare the total with budget_total: within_budget is total_estimated <=
budget_total, overrun is how much it goes over (0 if within). When over budget, suggest
concrete savings (cheaper tier, fewer paid activities, train instead of flight, fewer nights)."""
allowed_tools = frozenset({"cost_estimates", "convert_currency"})


class BudgetBreakdown(BaseModel):
    transport: float = Field(ge=0)
    accommodation: float = Field(ge=0)
    activities: float = Field(ge=0)
    food: float = Field(ge=0)

    @property
    def total(self) -> float:
        return self.transport + self.accommodation + self.activities + self.food


class BudgetOutput(BaseModel):
    total_estimated: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    budget_total: float = Field(ge=0)
    within_budget: bool
    overrun: float = Field(ge=0)
    breakdown: BudgetBreakdown
    suggestions: list[str] = Field(default_factory=list)
    notes: str = ""

    @model_validator(mode="after")
    def _derive_verdict(self) -> BudgetOutput:
        if not approx_equal(self.total_estimated, self.breakdown.total, tolerance=0.01):
            raise ValueError("total_estimated must be the sum of the breakdown")
        # Derived, not trusted: the planner's loop decision must not hinge on model arithmetic.
        self.within_budget = self.total_estimated <= self.budget_total
        self.overrun = round(max(0.0, self.total_estimated - self.budget_total), 2)
        return self


output_model = BudgetOutput


def build_messages(job: AgentJob) -> list[dict[str, Any]]:
    task = "Check the estimated trip cost against the budget."
    return build_job_messages(job, name, instructions, output_model, task)


def check_output(output: BudgetOutput, job: AgentJob) -> list[str]:
    errors: list[str] = []
    if output.currency != job.request.budget_currency:
        errors.append(f"currency must be the budget currency {job.request.budget_currency}")
    if not approx_equal(output.budget_total, float(job.request.budget_total), tolerance=0.001):
        errors.append(f"budget_total must be the trip's budget_total {job.request.budget_total}")
    if not output.within_budget and not output.suggestions:
        errors.append("over budget: give at least one suggestion")
    return errors


SPEC = AgentSpec(name, instructions, allowed_tools, output_model, build_messages, check_output)
