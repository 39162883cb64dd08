"""What one agent run produced: its output or why not, every LLM call and every tool call."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tripmesh_contracts import AgentName


@dataclass(frozen=True)
class LlmCallRecord:
    """One LLM call, as a usage event needs it (success or failure)."""

    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: int
    turn: int
    """1-based turn of the conversation (a request and its retries share a turn)."""
    attempt: int
    """Try of this request: 1, then 2, 3... for retries after a transient failure."""
    call_index: int = 0
    """1-based index of the call (every attempt counts) within the run: the usage id's part."""
    answer_attempt: int = 1
    """1 for the first answer; 2 for calls after the invalid-output correction."""
    success: bool = True
    error: str | None = None
    cost_estimated: bool = False
    cache_hit: bool = False


@dataclass(frozen=True)
class ToolCallRecord:
    name: str
    arguments: str
    turn: int
    ok: bool
    refused: bool = False
    """Not on the agent's allow-list: answered with an error, never executed."""
    error: str | None = None
    duration_ms: int = 0
    cache_hit: bool = False


@dataclass
class AgentOutcome:
    agent: AgentName
    model: str
    ok: bool = False
    output: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    """invalid_output | llm_error | budget_exhausted | too_many_turns | unknown_agent | cancelled"""
    retryable: bool = False
    """The failure was transient (LLM timeout, rate limit...): redelivering the job may succeed."""
    llm_calls: list[LlmCallRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def refused_tool_calls(self) -> list[ToolCallRecord]:
        return [c for c in self.tool_calls if c.refused]

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.llm_calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.llm_calls)

    @property
    def cost_usd(self) -> Decimal:
        return sum((c.cost_usd for c in self.llm_calls), Decimal(0))

    def result_fields(self) -> dict[str, Any]:
        """The AgentResult fields this outcome fills (the caller adds ids and envelope)."""
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "error_kind": self.error_kind,
            "cost_usd": self.cost_usd,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "duration_ms": self.duration_ms,
            "model": self.model,
        }
