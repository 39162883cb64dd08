"""`tripctl dlq ls | show ID | replay ID... | replay --all [--subject S] | purge`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.syntax import Syntax

from tripmesh_tripctl import deadletters, output
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.natsconn import connect

ERROR_WIDTH = 90


def render_list(rows: list[dict[str, Any]], out: Console) -> None:
    if not rows:
        out.print("no dead letters")
        return
    out.print(
        output.table(
            None,
            ["ID", "Age", "Original subject", "Kind", "Deliveries", "Consumer", "Error"],
            [
                (
                    r["id"],
                    output.ago(r["time"]),
                    r["original_subject"],
                    r["kind"],
                    r["deliveries"],
                    r["consumer"],
                    shorten(r["error"], ERROR_WIDTH),
                )
                for r in rows
            ],
        )
    )


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_detail(d: dict[str, Any], out: Console) -> None:
    fields = [
        ("ID", d["id"]),
        ("Dead-lettered", d["time"]),
        ("Original subject", d["original_subject"]),
        ("Original stream/seq", f"{d['original_stream']}/{d['original_seq']}"),
        ("Consumer", d["consumer"]),
        ("Deliveries", d["deliveries"]),
        ("Kind", d["kind"]),
        ("Error", d["error"]),
    ]
    for name, value in fields:
        out.print(f"[bold]{name + ':':<21}[/bold]{output.cell(value) if value is not None else '-'}")
    out.print("[bold]Headers:[/bold]")
    for key, value in sorted(d["headers"].items()):
        out.print(f"  {key}: {value}")
    out.print("[bold]Body:[/bold]")
    if "body" in d:
        out.print(Syntax(output.to_json(d["body"]), "json", background_color="default"))
    else:
        out.print(d["body_text"], markup=False)


@click.group("dlq")
def dlq() -> None:
    """Dead letters: messages a handler could never process, with their error."""


@dlq.command("ls")
@click.option("--subject", help="Only dead letters of this original subject (wildcards allowed).")
@click.option("--limit", default=100, show_default=True, help="At most this many, oldest first.")
@json_option
@pass_ctx
def ls(ctx: Ctx, subject: str | None, limit: int, as_json: bool) -> None:
    """List dead letters: ID, original subject, error kind, deliveries, error."""

    async def run() -> list[dict[str, Any]]:
        async with connect(ctx.settings) as nc:
            js = nc.jetstream(timeout=ctx.settings.timeout_seconds)
            return [d.summary() for d in await deadletters.list_dead_letters(js, subject, limit)]

    rows = asyncio.run(run())
    output.emit(rows, as_json, lambda out: render_list(rows, out))


@dlq.command("show")
@click.argument("letter_id", type=int)
@json_option
@pass_ctx
def show(ctx: Ctx, letter_id: int, as_json: bool) -> None:
    """One dead letter in full: error, original headers and body."""

    async def run() -> dict[str, Any]:
        async with connect(ctx.settings) as nc:
            return (
                await deadletters.get(nc.jetstream(timeout=ctx.settings.timeout_seconds), letter_id)
            ).detail()

    data = asyncio.run(run())
    output.emit(data, as_json, lambda out: render_detail(data, out))


@dlq.command("replay")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (of --subject, if given).")
@click.option("--subject", help="With --all: only this original subject (wildcards allowed).")
@click.option(
    "--body",
    "body_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Replay this corrected body instead of the stored one (one ID only; '-' reads stdin).",
)
@click.option("--keep", is_flag=True, help="Leave the entry in the DLQ after the replay.")
@json_option
@pass_ctx
def replay(
    ctx: Ctx,
    letter_ids: tuple[int, ...],
    replay_all: bool,
    subject: str | None,
    body_file: Path | None,
    keep: bool,
    as_json: bool,
) -> None:
    """Republish dead letters to their original subject (with their original headers and a
    fresh Nats-Msg-Id), then remove them from the DLQ. Safe to repeat: handlers are
    idempotent on the message's own id."""
    if bool(letter_ids) == replay_all:
        raise OperatorError("give dead letter IDs or --all, not both or neither", exit_code=2)
    if subject and not replay_all:
        raise OperatorError("--subject goes with --all", exit_code=2)
    if body_file is not None and len(letter_ids) != 1:
        raise OperatorError("--body replays exactly one ID", exit_code=2)
    body = None
    if body_file is not None:
        body = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()

    async def run() -> list[dict[str, Any]]:
        async with connect(ctx.settings) as nc:
            js = nc.jetstream(timeout=ctx.settings.timeout_seconds)
            if replay_all:
                letters = await deadletters.list_dead_letters(js, subject, limit=1_000_000)
            else:
                letters = [await deadletters.get(js, i) for i in letter_ids]
            return [(await deadletters.replay(js, d, body=body, keep=keep)).as_dict() for d in letters]

    done = asyncio.run(run())

    def human(out: Console) -> None:
        for r in done:
            note = " (corrected body)" if r["corrected"] else ""
            kept = "kept in the DLQ" if not r["removed"] else "removed from the DLQ"
            out.print(
                f"replayed {r['id']} -> {r['subject']} ({r['stream']} seq {r['stream_seq']}){note}, {kept}"
            )
        if not done:
            out.print("nothing to replay")

    output.emit(done, as_json, human)


@dlq.command("purge")
@click.option("--subject", help="Only dead letters of this original subject (wildcards allowed).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def purge(ctx: Ctx, subject: str | None, yes: bool, as_json: bool) -> None:
    """Delete dead letters for good (all of them, or one subject's)."""
    what = f"the dead letters of {subject}" if subject else "EVERY dead letter"
    if not yes and not click.confirm(f"Delete {what}?", default=False):
        raise OperatorError("not confirmed: nothing deleted", exit_code=1)

    async def run() -> int:
        async with connect(ctx.settings) as nc:
            return await deadletters.purge(nc, subject, ctx.settings.timeout_seconds)

    purged = asyncio.run(run())
    output.emit({"purged": purged}, as_json, lambda out: out.print(f"purged {purged} dead letter(s)"))
