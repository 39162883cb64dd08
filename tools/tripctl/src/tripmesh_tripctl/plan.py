"""`tripctl plan submit | show | events`: through the gateway's public API, as a user."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from tripmesh_tripctl import output
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.gateway import Gateway, plan_request

TERMINAL = {"completed", "partial", "failed", "cancelled"}


def token_option(f: Any) -> Any:
    return click.option(
        "--token",
        envvar="TRIPCTL_TOKEN",
        help="Bearer token (default TRIPCTL_TOKEN, else login with TRIPCTL_EMAIL / TRIPCTL_PASSWORD).",
    )(f)


def render_plan(p: dict[str, Any], versions: list[dict[str, Any]], out: Console) -> None:
    out.print(f"[bold]{p['title']}[/bold]  ({p['id']})")
    cost = p.get("total_cost_usd")
    rows = [
        ("status", p["status"] + (f" ({p['status_reason']})" if p.get("status_reason") else "")),
        ("progress", f"{p.get('completion_percentage', 0)}%"),
        ("version", p["version"]),
        ("destinations", ", ".join(p["destinations"])),
        ("dates", f"{p['start_date']} .. {p['end_date']}"),
        ("budget", f"{p['budget_total']} {p['budget_currency']}"),
        ("LLM cost (USD)", cost if cost is not None else p.get("cost_status", "-")),
        ("updated", p["updated_at"]),
    ]
    out.print(output.table(None, ["", ""], rows))
    agents = agent_rows(p.get("agent_results") or {})
    if agents:
        out.print(output.table("agents", ["Agent", "Status", "Detail"], agents))
    if versions:
        out.print(
            output.table(
                "versions",
                ["Version", "Status", "Parent", "Created", "Feedback"],
                [
                    (v["version"], v["status"], v.get("parent_version"), v["created_at"], v.get("feedback"))
                    for v in versions
                ],
            )
        )


def agent_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """One row per agent from the plan's `agent_results` (shape: {agent: {status, ...}})."""
    rows = []
    for agent, result in sorted(results.items()):
        if isinstance(result, dict):
            status = str(result.get("status") or ("failed" if result.get("error") else "done"))
            detail = str(result.get("error") or result.get("summary") or "")[:80]
        else:
            status, detail = "done", str(result)[:80]
        rows.append((agent, status, detail))
    return rows


def event_line(kind: str, data: dict[str, Any]) -> str:
    parts = [f"{kind:<18}", f"{data.get('completion_percentage', 0):>3}%"]
    for key in ("stage", "agent"):
        if data.get(key):
            parts.append(f"{key}={data[key]}")
    if data.get("message"):
        parts.append(str(data["message"]))
    return "  ".join(parts)


@click.group("plan")
def plan() -> None:
    """Trip plans, through the gateway's API."""


@plan.command("submit")
@click.argument("request", required=False)
@click.option("--title")
@click.option("--destination", "destinations", multiple=True, help="Repeatable.")
@click.option("--origin")
@click.option("--start", "start_date", help="YYYY-MM-DD")
@click.option("--end", "end_date", help="YYYY-MM-DD")
@click.option("--budget", "budget_total", type=float)
@click.option("--currency", "budget_currency")
@click.option("--travelers", "traveler_count", type=int)
@click.option("--watch", is_flag=True, help="Follow the plan's progress until it ends.")
@token_option
@json_option
@pass_ctx
def submit(
    ctx: Ctx, /, request: str | None, watch: bool, token: str | None, as_json: bool, **flags: Any
) -> None:
    """Submit a plan: REQUEST is JSON (inline, @file or - for stdin); flags override its fields."""
    body = plan_request(_load(request), flags)

    async def run() -> dict[str, Any]:
        async with Gateway(ctx.settings, token) as gw:
            accepted = await gw.submit(body)
            if not watch:
                return accepted
            events = []
            async for kind, data in gw.events(str(accepted["id"])):
                events.append({"event": kind, **data})
                if not as_json:
                    click.echo(event_line(kind, data))
            return {**accepted, "events": events, "plan": await gw.plan(str(accepted["id"]))}

    result = asyncio.run(run())
    output.emit(
        result,
        as_json,
        lambda out: out.print(f"plan {result['id']}: {result.get('plan', result).get('status')}"),
    )


def _load(request: str | None) -> dict[str, Any]:
    if not request:
        return {}
    text = sys.stdin.read() if request == "-" else request
    if request.startswith("@"):
        text = Path(request[1:]).read_text()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OperatorError(f"the plan request is not JSON: {exc}", exit_code=2) from exc
    if not isinstance(data, dict):
        raise OperatorError("the plan request must be a JSON object", exit_code=2)
    return data


@plan.command("show")
@click.argument("plan_id")
@token_option
@json_option
@pass_ctx
def show(ctx: Ctx, plan_id: str, token: str | None, as_json: bool) -> None:
    """State, progress, agents, cost and versions of one plan."""

    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with Gateway(ctx.settings, token) as gw:
            return await gw.plan(plan_id), await gw.versions(plan_id)

    p, versions = asyncio.run(run())
    output.emit({**p, "versions": versions}, as_json, lambda out: render_plan(p, versions, out))


@plan.command("events")
@click.argument("plan_id")
@token_option
@json_option
@pass_ctx
def events(ctx: Ctx, plan_id: str, token: str | None, as_json: bool) -> None:
    """The plan's events (SSE from the gateway), one line each (JSON lines with --json),
    from the first; follows a running plan until its final event."""

    async def run() -> None:
        async with Gateway(ctx.settings, token) as gw:
            async for kind, data in gw.events(plan_id):
                click.echo(json.dumps({"event": kind, **data}) if as_json else event_line(kind, data))

    asyncio.run(run())
