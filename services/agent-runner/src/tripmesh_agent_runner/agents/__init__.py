"""The seven agents (instructions + allow-listed tools + output schema) and the engine."""

from tripmesh_agent_runner.agents.common import AgentSpec
from tripmesh_agent_runner.agents.engine import BudgetExhausted, CallObserver, run_agent
from tripmesh_agent_runner.agents.outcome import AgentOutcome, LlmCallRecord, ToolCallRecord
from tripmesh_agent_runner.agents.registry import AGENTS

__all__ = [
    "AGENTS",
    "AgentOutcome",
    "AgentSpec",
    "BudgetExhausted",
    "CallObserver",
    "LlmCallRecord",
    "ToolCallRecord",
    "run_agent",
]
