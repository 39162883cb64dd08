"""The deterministic local model, `tripmesh-local/deterministic`.

It is a STAND-IN for a real LLM, not a language model: it lets the whole system run offline
for demos and tests. It reads which agent it serves from the `agent: <name>` line of the
system prompt and the trip from the <trip>/<context> data blocks; on its first turn it asks
for the tools that agent needs (only tools it was offered), and once the results are back it
composes that agent's JSON answer from them — real distances, holidays, prices, climate.
It never reads the traveller's free text as instructions (it only reads preference fields).
Usage is reported as ~4 characters per token so cost accounting works end to end; its price
is 0 unless configured (LitellmClient(local_price=...)).

Register it with `register_local_model()`, then call litellm with model=LOCAL_MODEL.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from tripmesh_agent_runner.llm.base import LOCAL_MODEL, LOCAL_PROVIDER
from tripmesh_agent_runner.llm.litellm_import import load_litellm
from tripmesh_agent_runner.llm.local_answers import ANSWERERS, read_conversation

litellm = load_litellm()
CHARS_PER_TOKEN = 4


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _offered_tools(optional_params: dict[str, Any]) -> set[str]:
    names = set()
    for spec in optional_params.get("tools") or []:
        function = spec.get("function", {}) if isinstance(spec, dict) else {}
        if function.get("name"):
            names.add(str(function["name"]))
    return names


def _prompt_text(messages: list[Any], optional_params: dict[str, Any]) -> str:
    parts = [json.dumps(optional_params.get("tools") or [])]
    for message in messages:
        data = message if isinstance(message, dict) else getattr(message, "model_dump", dict)()
        parts.append(str(data.get("content") or ""))
        parts.append(json.dumps(data.get("tool_calls") or [], default=str))
    return "".join(parts)


def respond(model: str, messages: list[Any], optional_params: dict[str, Any]) -> Any:
    """One deterministic turn: tool calls on the first turn, the final JSON after."""
    conversation = read_conversation(messages)
    offered = _offered_tools(optional_params)
    answerer = ANSWERERS.get(conversation.agent or "")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish_reason = "stop"
    if answerer is None:
        message["content"] = json.dumps({"error": "no 'agent: <name>' line in the system prompt"})
    else:
        plan_tools, compose = answerer
        planned = (
            []
            if conversation.answered_tools
            else [(n, a) for n, a in plan_tools(conversation) if n in offered]
        )
        if planned:
            turn = 1 + sum(
                1 for m in messages if (m.get("role") if isinstance(m, dict) else m.role) == "assistant"
            )
            message["tool_calls"] = [
                {"id": f"call_{turn}_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)}}
                for i, (name, args) in enumerate(planned)
            ]  # fmt: skip
            finish_reason = "tool_calls"
        else:
            try:
                message["content"] = json.dumps(compose(conversation), ensure_ascii=False)
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                message["content"] = json.dumps(
                    {"error": f"cannot compose an answer: {type(exc).__name__}: {exc}"}
                )
    completion_text = message["content"] or json.dumps(message.get("tool_calls"))
    prompt_tokens = _tokens(_prompt_text(messages, optional_params))
    completion_tokens = _tokens(completion_text)
    return litellm.ModelResponse(
        model=model,
        choices=[{"index": 0, "message": message, "finish_reason": finish_reason}],
        usage=litellm.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


class DeterministicLocalModel(litellm.CustomLLM):  # type: ignore[misc,name-defined]
    """litellm custom provider `tripmesh-local` (see the module docstring)."""

    latency_seconds: float = 0.0
    """Simulated thinking time per async call (AGENT_RUNNER_LOCAL_MODEL_LATENCY_MS): lets load
    and crash tests hold calls in flight the way a real model does."""

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        return respond(model, messages, _optional_params(args, kwargs))

    async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        return respond(model, messages, _optional_params(args, kwargs))


def _optional_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # litellm passes optional_params by keyword today; positionally it is the 10th parameter
    # (after api_base, custom_prompt_dict, model_response, print_verbose, encoding, api_key,
    # logging_obj), i.e. args[7].
    params = kwargs.get("optional_params")
    if params is None and len(args) > 7:
        params = args[7]
    return dict(params or {})


def register_local_model(latency_seconds: float | None = None) -> str:
    """Add the `tripmesh-local` provider to litellm (idempotent); returns the model string.
    `latency_seconds` (when given) sets the stand-in's per-call delay."""
    handler = next(
        (
            item["custom_handler"]
            for item in litellm.custom_provider_map
            if item.get("provider") == LOCAL_PROVIDER
        ),
        None,
    )
    if handler is None:
        handler = DeterministicLocalModel()
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": LOCAL_PROVIDER, "custom_handler": handler},
        ]
    if latency_seconds is not None:
        handler.latency_seconds = latency_seconds
    return LOCAL_MODEL
