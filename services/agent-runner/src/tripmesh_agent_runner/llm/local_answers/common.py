"""Reading a conversation the way the local stand-in needs: the data blocks and tool results."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

_BLOCK = re.compile(r"<(trip|context|user_data)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True)
class ToolResult:
    name: str
    arguments: dict[str, Any]
    result: Any
    error: str | None


@dataclass
class Conversation:
    agent: str | None
    trip: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    results: list[ToolResult] = field(default_factory=list)
    answered_tools: bool = False
    """True once any tool result came back: time to compose the answer."""

    @property
    def start(self) -> date:
        return date.fromisoformat(self.trip["start_date"])

    @property
    def end(self) -> date:
        return date.fromisoformat(self.trip["end_date"])

    @property
    def destinations(self) -> list[dict[str, Any]]:
        return list(self.trip.get("destinations") or [])

    @property
    def currency(self) -> str:
        return str(self.trip.get("budget_currency", "USD"))

    @property
    def travelers(self) -> int:
        return int(self.trip.get("traveler_count", 1))

    @property
    def tier(self) -> str:
        return str(self.trip.get("tier", "mid"))

    @property
    def constraints(self) -> dict[str, Any]:
        return dict(self.trip.get("constraints") or {})

    def results_of(self, name: str) -> list[ToolResult]:
        return [r for r in self.results if r.name == name and r.error is None]

    def result_for(self, name: str, **match: Any) -> Any:
        """The result of the first successful `name` call whose arguments include `match`."""
        for r in self.results_of(name):
            if all(r.arguments.get(k) == v for k, v in match.items()):
                return r.result
        return None


def _field(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, dict) else getattr(message, key, None)


def _text(message: Any) -> str:
    content = _field(message, "content")
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return content or ""


def read_conversation(messages: list[Any]) -> Conversation:
    system = next((_text(m) for m in messages if _field(m, "role") == "system"), "")
    marker = re.match(r"agent: (\w+)", system)
    conversation = Conversation(agent=marker.group(1) if marker else None)
    first_user = next((_text(m) for m in messages if _field(m, "role") == "user"), "")
    for block, raw in _BLOCK.findall(first_user):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            setattr(conversation, block, value)
    requested: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in messages:
        for call in _field(message, "tool_calls") or []:
            function = _field(call, "function")
            try:
                arguments = json.loads(_field(function, "arguments") or "{}")
            except json.JSONDecodeError:
                arguments = {}
            requested[str(_field(call, "id"))] = (str(_field(function, "name")), arguments)
        if _field(message, "role") == "tool":
            conversation.answered_tools = True
            name, arguments = requested.get(
                str(_field(message, "tool_call_id")), (str(_field(message, "name")), {})
            )
            try:
                payload = json.loads(_text(message))
            except json.JSONDecodeError:
                payload = {"error": "unreadable tool result"}
            error = payload.get("error") if isinstance(payload, dict) and set(payload) == {"error"} else None
            conversation.results.append(ToolResult(name, arguments, None if error else payload, error))
    return conversation


def money(value: float) -> float:
    return round(value, 2)
