"""Tools the agents may call: plain functions with a pydantic args model, exposed to the LLM as
OpenAI-style function specs and executed by name with validated arguments.

With a shared cache attached (`registry.cache`), a successful lookup is stored under the tool
name and its *validated* arguments, so every replica answers the same lookup from the cache
within the TTL; a tool whose answer depends on the moment says so with `cache_when`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tripmesh_agent_runner.cache import ResponseCache, cache_key, count_lookup


class ToolError(Exception):
    """A tool could not answer (unknown place, unsupported country): told to the model as is."""


ToolFunction = Callable[[Any], object | Awaitable[object]]


def always(args: Any) -> bool:
    return True


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    func: ToolFunction
    """Called with an instance of args_model; returns JSON-able data or a pydantic model."""
    cache_when: Callable[[Any], bool] = always
    """Whether a result for these (validated) arguments may be served from the shared cache:
    false for answers that depend on the moment (e.g. the local time *now*)."""

    def spec(self) -> dict[str, Any]:
        """The OpenAI / litellm `tools=` entry for this tool (its JSON schema is shared: treat
        it as read-only)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description,
                         "parameters": parameters_schema(self.args_model)},
        }  # fmt: skip


@functools.cache
def parameters_schema(args_model: type[BaseModel]) -> dict[str, Any]:
    """Built once per args model: pydantic's schema generation costs ~3 ms per tool, which at
    every job's start was a third of the runner's CPU per LLM call (measured)."""
    parameters = args_model.model_json_schema()
    parameters.pop("title", None)
    return parameters


@dataclass(frozen=True)
class ToolOutcome:
    name: str
    ok: bool
    result: Any = None
    error: str | None = None
    duration_ms: int = 0
    cache_hit: bool = False

    def as_message_content(self, limit: int = 12_000) -> str:
        """What goes back to the model in the `tool` message (bounded: results feed the prompt)."""
        payload = self.result if self.ok else {"error": self.error}
        text = json.dumps(payload, ensure_ascii=False, default=str)
        return text if len(text) <= limit else text[:limit] + "...(truncated)"


def _to_jsonable(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), cache: ResponseCache | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self.cache = cache
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Specs of the named tools (all when None), in registration order; unknown names skipped."""
        wanted = None if names is None else set(names)
        return [t.spec() for t in self._tools.values() if wanted is None or t.name in wanted]

    async def execute(self, name: str, arguments: str | Mapping[str, Any] | None) -> ToolOutcome:
        """Run a tool by name. Bad arguments, unknown tools and ToolError come back as a failed
        outcome (for the model to read); anything else is a bug and is reported the same way
        rather than failing the whole agent."""
        started = time.perf_counter()

        def done(ok: bool, result: Any = None, error: str | None = None, hit: bool = False) -> ToolOutcome:
            elapsed = int((time.perf_counter() - started) * 1000)
            return ToolOutcome(
                name=name, ok=ok, result=result, error=error, duration_ms=elapsed, cache_hit=hit
            )

        tool = self._tools.get(name)
        if tool is None:
            return done(False, error=f"unknown tool {name!r}")
        try:
            raw = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else arguments
            args = tool.args_model.model_validate(raw or {})
        except (ValueError, ValidationError) as exc:
            return done(False, error=f"invalid arguments for {name}: {exc}")
        key = None
        if self.cache is not None and tool.cache_when(args):
            key = cache_key("tool", {"tool": name, "args": args.model_dump(mode="json")})
            raw = await self.cache.get(key)
            count_lookup("tool", raw is not None)
            if raw is not None:
                return done(True, result=json.loads(raw), hit=True)
        try:
            if inspect.iscoroutinefunction(tool.func):
                value = await tool.func(args)
            else:
                # Off the event loop: a first call may build an index or import holiday rules
                # (~1 s), and the runner has other jobs and heartbeats in flight.
                value = await asyncio.to_thread(tool.func, args)
                if inspect.isawaitable(value):
                    value = await value
        except ToolError as exc:
            return done(False, error=str(exc))
        except Exception as exc:
            return done(False, error=f"{name} failed: {type(exc).__name__}: {exc}")
        result = _to_jsonable(value)
        if key is not None and self.cache is not None:
            await self.cache.put(key, json.dumps(result, ensure_ascii=False, default=str).encode())
        return done(True, result=result)
