"""`tripctl doctor`: is the deployment what libs/contracts and the services declare?
Exit 0 when everything is, 1 with a list of problems and fixes otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich.console import Console
from tripmesh_kit.bus import provision

from tripmesh_tripctl import output
from tripmesh_tripctl.checks import Check, check_bus, check_postgres, check_qdrant
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.natsconn import connect, redact
from tripmesh_tripctl.settings import Settings

AREAS = ("nats", "postgres", "qdrant")


async def run_checks(settings: Settings, areas: set[str], fix: bool) -> list[Check]:
    checks: list[Check] = []
    if "nats" in areas:
        try:
            async with connect(settings) as nc:
                if fix:
                    await provision(nc.jetstream(timeout=settings.timeout_seconds))
                checks += await check_bus(nc, settings.timeout_seconds)
        except OperatorError as exc:
            checks.append(Check("nats", "connection", False, str(exc), exc.hint))
    if "postgres" in areas:
        checks += await check_postgres(settings.operator_database_url(), settings.timeout_seconds)
    if "qdrant" in areas:
        checks += await check_qdrant(settings)
    return checks


def render(checks: list[Check], settings: Settings, out: Console) -> None:
    out.print(f"NATS {redact(settings.nats_url)}")
    out.print(
        output.table(
            None,
            ["", "Area", "Check", "Problem"],
            [("[green]ok[/green]" if c.ok else "[red]FAIL[/red]", c.area, c.name, c.problem) for c in checks],
        )
    )
    failed = [c for c in checks if not c.ok]
    if not failed:
        out.print("[green]everything matches libs/contracts[/green]")
        return
    out.print(f"\n[red]{len(failed)} problem(s)[/red]; to fix:")
    for fix in dict.fromkeys(c.fix for c in failed if c.fix):
        out.print(f"  - {fix}", markup=False)


@click.command("doctor")
@click.option("--skip", type=click.Choice(AREAS), multiple=True, help="Leave out an area (repeatable).")
@click.option("--fix", is_flag=True, help="Create or update missing / drifted streams and consumers first.")
@json_option
@pass_ctx
def doctor(ctx: Ctx, skip: tuple[str, ...], fix: bool, as_json: bool) -> None:
    """Check NATS, streams and consumers, Postgres schemas and Qdrant collections against
    libs/contracts and say what is missing and how to fix it (exit 1 if anything is)."""
    checks = asyncio.run(run_checks(ctx.settings, set(AREAS) - set(skip), fix))
    data: dict[str, Any] = {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}
    output.emit(data, as_json, lambda out: render(checks, ctx.settings, out))
    if not data["ok"]:
        raise click.exceptions.Exit(1)
