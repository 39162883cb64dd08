"""The seven agent types by name."""

from __future__ import annotations

from tripmesh_contracts import AgentName

from tripmesh_agent_runner.agents import (
    accommodation,
    activity,
    budget,
    location,
    planning,
    transport,
    weather,
)
from tripmesh_agent_runner.agents.common import AgentSpec

AGENTS: dict[AgentName, AgentSpec] = {
    module.SPEC.name: module.SPEC
    for module in (location, weather, transport, accommodation, activity, budget, planning)
}
