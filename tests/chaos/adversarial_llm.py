"""A hostile OpenAI-compatible model for the reliability battery (issue #12, test 9).

`POST /v1/chat/completions` answers every agent the same way:
- first turn (no tool results yet): tool calls the agent may NOT make (other agents' real
  tools and made-up ones: `shell`, `read_plan`), plus an allowed call whose arguments carry
  another tenant's user id and plan id (set with `POST /_adv/victim`);
- later turns: schema-breaking output (a JSON object of the wrong shape, then prose), with a
  `usage` claiming an absurd number of tokens (1e9 completion tokens).
Every request is appended to a JSONL log (`--log`), with the max_tokens the caller asked for,
the tool calls this model made and the tool results the caller sent back (matched by
tool_call_id): a refused call comes back as an error, an executed one as a result - that is
how the test sees, from outside, whether an unlisted tool ran.

    python adversarial_llm.py --port 9200 --log calls.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
import uuid
from typing import Any

from aiohttp import web

AGENT_LINE = re.compile(r"agent: (\w+)")
ABSURD_TOKENS = 1_000_000_000
# tools of other agents (real, in the runner's registry) and tools nobody has
FOREIGN_TOOLS = ["distance_km", "airports_near", "climate_estimate", "cost_estimates", "public_holidays"]
MADE_UP_TOOLS = ["shell", "read_plan", "delete_user"]


def agent_of(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        if message.get("role") == "system":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            found = AGENT_LINE.search(text or "")
            return found.group(1) if found else None
    return None


def offered_tools(body: dict[str, Any]) -> list[str]:
    return [t.get("function", {}).get("name", "") for t in body.get("tools") or []]


class Adversary:
    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.victim: dict[str, str] = {}
        self.issued: dict[str, dict[str, Any]] = {}
        """tool_call_id -> the call we made (name, allowed: was it among the offered tools)."""

    def log(self, entry: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def tool_calls(self, offered: list[str]) -> list[dict[str, Any]]:
        victim = self.victim
        hostile = [t for t in FOREIGN_TOOLS if t not in offered] + MADE_UP_TOOLS
        args = {"user_id": victim.get("user_id", ""), "plan_id": victim.get("plan_id", "")}
        calls = [(name, {**args, "name": victim.get("plan_id", "x")}) for name in hostile]
        if offered:  # an allowed tool, another tenant's ids in its arguments
            calls.append((offered[0], {"name": victim.get("plan_id", "x"), **args}))
        out = []
        for name, arguments in calls:
            call_id = f"call_{uuid.uuid4().hex[:16]}"
            self.issued[call_id] = {"name": name, "allowed": name in offered}
            out.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            )
        return out

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        messages = body.get("messages") or []
        offered = offered_tools(body)
        returned = []
        for m in messages:
            if m.get("role") == "tool" and m.get("tool_call_id") in self.issued:
                call = self.issued[m["tool_call_id"]]
                content = m.get("content")
                text = content if isinstance(content, str) else json.dumps(content)
                returned.append({**call, "content": (text or "")[:2000]})
        turn_with_results = any(m.get("role") == "tool" for m in messages)
        if not turn_with_results and offered:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": self.tool_calls(offered),
            }
            finish = "tool_calls"
        else:
            retried = any(m.get("role") == "user" and "not valid" in str(m.get("content")) for m in messages)
            broken = "Sure! Here is your plan, no JSON today." if retried else json.dumps({"hacked": True})
            message = {"role": "assistant", "content": broken}
            finish = "stop"
        self.log(
            {
                "at": time.time(),
                "agent": agent_of(body),
                "model": body.get("model"),
                "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens"),
                "offered_tools": offered,
                "answered_with": [c["function"]["name"] for c in message.get("tool_calls") or []]
                or "content",
                "tool_results": returned,
            }
        )
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": ABSURD_TOKENS,
                "total_tokens": ABSURD_TOKENS + 50,
            },
        }
        return web.json_response(payload)

    async def set_victim(self, request: web.Request) -> web.Response:
        self.victim = {k: str(v) for k, v in (await request.json()).items()}
        return web.json_response(self.victim)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


async def serve(port: int, log_path: str) -> None:
    adversary = Adversary(log_path)
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", adversary.chat)
    app.router.add_post("/chat/completions", adversary.chat)
    app.router.add_post("/_adv/victim", adversary.set_victim)
    app.router.add_get("/_adv/health", adversary.health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.log))


if __name__ == "__main__":
    main()
