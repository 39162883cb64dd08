"""The deterministic local stand-in's answers, per agent: which tools to call first, then the
final JSON composed from the tool results (and the earlier agents' results in <context>)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tripmesh_agent_runner.llm.local_answers import options, research, wrapup
from tripmesh_agent_runner.llm.local_answers.common import Conversation, read_conversation

ToolPlan = list[tuple[str, dict[str, Any]]]
Planner = Callable[[Conversation], ToolPlan]
Composer = Callable[[Conversation], dict[str, Any]]

ANSWERERS: dict[str, tuple[Planner, Composer]] = {
    "location": (research.location_tools, research.location_answer),
    "weather": (research.weather_tools, research.weather_answer),
    "transport": (options.transport_tools, options.transport_answer),
    "accommodation": (options.accommodation_tools, options.accommodation_answer),
    "activity": (options.activity_tools, options.activity_answer),
    "budget": (wrapup.budget_tools, wrapup.budget_answer),
    "planning": (wrapup.planning_tools, wrapup.planning_answer),
}

__all__ = ["ANSWERERS", "Conversation", "read_conversation"]
