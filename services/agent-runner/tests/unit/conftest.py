"""Shared fixtures: real tools, the real litellm client with the local stand-in, trip jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import tripmesh_places as places
from tripmesh_agent_runner.llm.litellm_client import LitellmClient
from tripmesh_agent_runner.tools import ToolRegistry, build_tool_registry
from tripmesh_contracts import AgentJob, AgentName, Place, PlanRequest, Stage

JobFactory = Callable[..., AgentJob]


def place(name: str) -> Place:
    resolved = places.resolve(name).place
    assert resolved is not None, name
    return resolved


@pytest.fixture(scope="session")
def tools() -> ToolRegistry:
    return build_tool_registry()


@pytest.fixture(scope="session")
def llm() -> LitellmClient:
    return LitellmClient()


@pytest.fixture(scope="session")
def make_job() -> JobFactory:
    def factory(
        agent: AgentName,
        *,
        destinations: tuple[str, ...] = ("Lisbon", "Porto"),
        origin: str | None = "London",
        start: date = date(2026, 11, 27),
        end: date = date(2026, 12, 3),
        budget: str = "3000",
        currency: str = "EUR",
        travelers: int = 2,
        description: str | None = "A week of food and old streets.",
        preferences: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        constraints: dict[str, Any] | None = None,
    ) -> AgentJob:
        request = PlanRequest(
            title="Autumn in Portugal",
            description=description,
            destinations=[place(n) for n in destinations],
            origin=place(origin) if origin else None,
            start_date=start,
            end_date=end,
            budget_total=Decimal(budget),
            budget_currency=currency,
            traveler_count=travelers,
            preferences=preferences if preferences is not None else {"interests": ["food"]},
        )
        return AgentJob(
            user_id="user-1",
            plan_id="plan-1",
            run_id="run-1",
            version=1,
            agent=agent,
            stage=Stage.RESEARCH,
            request=request,
            context=context or {},
            constraints=constraints or {},
        )

    return factory
