"""The tool-calling loop that runs one agent job against an LLM.

Security rule: the model may only run the tools on its agent's allow-list. Anything else it
asks for is refused (recorded, answered with an error) and never executed, whatever the
conversation says — the allow-list, not the prompt, is the boundary."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from tripmesh_contracts import AgentJob

from tripmesh_agent_runner.agents.common import AgentSpec
from tripmesh_agent_runner.agents.llm_calls import BudgetExhausted, CallObserver, LlmCalls
from tripmesh_agent_runner.agents.outcome import AgentOutcome, ToolCallRecord
from tripmesh_agent_runner.agents.registry import AGENTS
from tripmesh_agent_runner.llm.base import (
    Cacheable,
    CallConfig,
    LlmCallConfig,
    LlmCallError,
    LlmClient,
    LlmResponse,
    ToolCallRequest,
)
from tripmesh_agent_runner.tools.registry import ToolRegistry

__all__ = ["BudgetExhausted", "CallObserver", "parse_json_object", "run_agent", "validate_answer"]

MAX_ERRORS_SHOWN = 8
MAX_TOOL_CALLS_PER_TURN = 16
"""More calls in one turn are answered with an error, not run: a runaway model must not fan out."""
RECORDED_ARGUMENTS_CHARS = 500
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a model's answer, tolerating code fences or prose around it."""
    if not text or not text.strip():
        raise ValueError("empty answer: expected a JSON object")
    stripped = _FENCE.sub("", text.strip())
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("no JSON object in the answer") from None
        value = json.loads(stripped[start : end + 1])
    if not isinstance(value, dict):
        raise ValueError("the answer must be a JSON object")
    return value


def validate_answer(
    content: str | None, spec: AgentSpec, job: AgentJob
) -> tuple[dict[str, Any] | None, list[str]]:
    """(output, []) when the answer parses, matches the schema and passes the job checks."""
    try:
        data = parse_json_object(content)
        model: BaseModel = spec.output_model.model_validate(data)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
        return None, errors[:MAX_ERRORS_SHOWN]
    except ValueError as exc:
        return None, [str(exc)]
    errors = spec.check_output(model, job)
    if errors:
        return None, errors[:MAX_ERRORS_SHOWN]
    return model.model_dump(mode="json", by_alias=True), []


async def _answer_tool_call(
    call: ToolCallRequest, index: int, turn: int, spec: AgentSpec, tools: ToolRegistry
) -> tuple[str, ToolCallRecord]:
    """(tool message content, record) for one requested call: refused unless allow-listed."""
    arguments = call.arguments[:RECORDED_ARGUMENTS_CHARS]
    if call.name not in spec.allowed_tools:
        refusal = json.dumps({"error": f"tool {call.name!r} is not available to this agent"})
        return refusal, ToolCallRecord(
            call.name, arguments, turn, ok=False, refused=True, error="not on the allow-list"
        )
    if index >= MAX_TOOL_CALLS_PER_TURN:
        error = f"more than {MAX_TOOL_CALLS_PER_TURN} tool calls in one turn"
        return json.dumps({"error": error}), ToolCallRecord(call.name, arguments, turn, ok=False, error=error)
    result = await tools.execute(call.name, call.arguments)
    record = ToolCallRecord(
        call.name,
        arguments,
        turn,
        ok=result.ok,
        error=result.error,
        duration_ms=result.duration_ms,
        cache_hit=result.cache_hit,
    )
    return result.as_message_content(), record


def _retry_message(errors: list[str]) -> dict[str, Any]:
    listed = "\n".join(f"- {e}" for e in errors)
    return {
        "role": "user",
        "content": f"Your answer was not valid:\n{listed}\nReply with only the corrected JSON object.",
    }


def _acceptable(spec: AgentSpec, job: AgentJob) -> Cacheable:
    """Answers worth caching: tool calls the engine will run (all on the allow-list), or a
    final answer that validates. An answer the engine rejects is never served again."""

    def check(response: LlmResponse) -> bool:
        if response.tool_calls:
            return all(c.name in spec.allowed_tools for c in response.tool_calls)
        return validate_answer(response.content, spec, job)[0] is not None

    return check


async def run_agent(
    job: AgentJob,
    llm: LlmClient,
    tools: ToolRegistry,
    *,
    config: CallConfig | None = None,
    spec: AgentSpec | None = None,
    observer: CallObserver | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AgentOutcome:
    """Run `job` with its agent's spec: call the model with the allowed tools, execute allowed
    tool calls, loop up to spec.max_turns, validate the answer (one retry with the errors), and
    return the outcome. A failed LLM request is retried by `LlmCalls` (the retry owner of the
    LLM hop), each attempt reported to the observer."""
    config = config or LlmCallConfig()
    started = time.perf_counter()
    outcome = AgentOutcome(agent=job.agent, model=config.model)

    def finish(
        *, error_kind: str | None = None, error: str | None = None, retryable: bool = False
    ) -> AgentOutcome:
        outcome.ok = error_kind is None
        outcome.error_kind, outcome.error, outcome.retryable = error_kind, error, retryable
        outcome.duration_ms = int((time.perf_counter() - started) * 1000)
        return outcome

    spec = spec or AGENTS.get(job.agent)
    if spec is None:
        return finish(error_kind="unknown_agent", error=f"no agent {job.agent!r}")
    messages = spec.build_messages(job)
    tool_specs = tools.specs(spec.allowed_tools) or None
    calls = LlmCalls(job, llm, config, outcome, observer, sleep)
    acceptable = _acceptable(spec, job)
    answer_attempt = 1
    for turn in range(1, spec.max_turns + 1):
        try:
            response = await calls.request(
                messages=messages,
                tools=tool_specs,
                turn=turn,
                answer_attempt=answer_attempt,
                cacheable=acceptable,
            )
        except BudgetExhausted as exc:
            return finish(error_kind="budget_exhausted", error=str(exc) or "LLM budget exhausted")
        except LlmCallError as exc:
            return finish(error_kind="llm_error", error=str(exc)[:1000], retryable=exc.transient)

        if response.tool_calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": response.content,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in response.tool_calls
                    ],
                }
            )
            for index, call in enumerate(response.tool_calls):
                content, tool_record = await _answer_tool_call(call, index, turn, spec, tools)
                outcome.tool_calls.append(tool_record)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
            continue

        output, errors = validate_answer(response.content, spec, job)
        if output is not None:
            outcome.output = output
            return finish()
        if answer_attempt == 1:
            answer_attempt = 2
            messages.append({"role": "assistant", "content": response.content or ""})
            messages.append(_retry_message(errors))
            continue
        return finish(error_kind="invalid_output", error="; ".join(errors)[:1000])
    return finish(error_kind="too_many_turns", error=f"no final answer within {spec.max_turns} LLM calls")
