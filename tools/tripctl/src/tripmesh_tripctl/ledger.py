"""`tripctl ledger summary` (svc.ledger.summary over NATS) and `tripctl ledger rebuild`
(the cost-ledger's own `rebuild` command, see services_cli.py)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import click
import nats.errors
from rich.console import Console
from tripmesh_contracts import subjects
from tripmesh_contracts.rpc import CostSummaryReply, CostSummaryRequest, SummaryPeriod

from tripmesh_tripctl import output
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.natsconn import connect
from tripmesh_tripctl.services_cli import run_service_command

BREAKDOWNS = ("by_agent", "by_model", "by_provider", "by_day")


async def summary(ctx: Ctx, request: CostSummaryRequest) -> CostSummaryReply:
    async with connect(ctx.settings) as nc:
        try:
            msg = await nc.request(
                subjects.SVC_LEDGER_SUMMARY, request.to_bytes(), timeout=ctx.settings.timeout_seconds
            )
        except nats.errors.NoRespondersError as exc:
            raise OperatorError(
                "the cost-ledger is not answering svc.ledger.summary (no responders)",
                hint="is the cost-ledger running? `tripctl bus status` shows its consumer",
            ) from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise OperatorError("the cost-ledger did not answer in time") from exc
    reply = CostSummaryReply.model_validate_json(msg.data)
    if reply.error is not None:
        raise OperatorError(
            f"the ledger refused: {reply.error.status} {reply.error.title} {reply.error.detail or ''}"
        )
    return reply


def render_summary(data: dict[str, Any], out: Console) -> None:
    plan = f", plan {data['plan_id']}" if data.get("plan_id") else ""
    out.print(
        f"[bold]user {data['user_id']}{plan}[/bold]: {data['calls']} calls, "
        f"{data['prompt_tokens']} prompt + {data['completion_tokens']} completion tokens, "
        f"${data['total_cost_usd']}"
    )
    for key in BREAKDOWNS:
        rows = data.get(key) or []
        if rows:
            out.print(
                output.table(
                    key.replace("_", " "),
                    ["Key", "Calls", "Prompt tokens", "Completion tokens", "Cost USD"],
                    [
                        (b["key"], b["calls"], b["prompt_tokens"], b["completion_tokens"], b["cost_usd"])
                        for b in rows
                    ],
                )
            )


@click.group("ledger")
def ledger() -> None:
    """The cost ledger: spend summaries and rebuilds."""


@ledger.command("summary")
@click.option("--user", "user_id", required=True, help="The user's id.")
@click.option("--plan", "plan_id", help="Only this plan's spend.")
@click.option(
    "--period", type=click.Choice([p.value for p in SummaryPeriod]), default="all", show_default=True
)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="With --period custom: first day.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="With --period custom: last day.")
@json_option
@pass_ctx
def summary_cmd(
    ctx: Ctx, user_id: str, plan_id: str | None, period: str, start: Any, end: Any, as_json: bool
) -> None:
    """A user's LLM calls, tokens and cost, by agent, model, provider and day."""
    request = CostSummaryRequest(
        user_id=user_id,
        plan_id=plan_id,
        period=SummaryPeriod(period),
        start=_day(start),
        end=_day(end),
    )
    data = asyncio.run(summary(ctx, request)).model_dump(mode="json", exclude={"error"})
    output.emit(data, as_json, lambda out: render_summary(data, out))


def _day(value: Any) -> date | None:
    return value.date() if value is not None else None


@ledger.command("rebuild")
@click.option("--force", is_flag=True, help="Rebuild even if USAGE holds fewer messages than the ledger.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the rebuild.")
@json_option
@pass_ctx
def rebuild(ctx: Ctx, force: bool, timeout: float, as_json: bool) -> None:
    """Empty the ledger's events and totals and replay the USAGE stream (runs the
    cost-ledger's `python -m tripmesh_cost_ledger rebuild`; safe beside the live service)."""
    settings = ctx.settings
    database_url = settings.operator_database_url()
    if not database_url:
        raise OperatorError("no database to rebuild", hint="set DATABASE_URL (or COST_LEDGER_DATABASE_URL)")
    env = {"NATS_URL": settings.operator_nats_url(), "DATABASE_URL": database_url, "LOG_FORMAT": "json"}
    if settings.ledger_database_url:
        env["COST_LEDGER_DATABASE_URL"] = settings.ledger_database_url
    argv = ["rebuild", *(["--force"] if force else [])]
    report = run_service_command("tripmesh_cost_ledger", argv, env, timeout)
    output.emit(report, as_json, lambda out: out.print(output.key_values("ledger rebuilt", report)))
