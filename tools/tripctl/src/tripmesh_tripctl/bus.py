"""`tripctl bus status`: every stream and durable consumer, with the numbers on-call reads
first (messages, bytes, subjects; pending, ack-pending, redelivered, last activity)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import click
from nats.aio.client import Client
from nats.js import api
from rich.console import Console

from tripmesh_tripctl import output
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.natsconn import connect, js_api


def stream_row(raw: dict[str, Any]) -> dict[str, Any]:
    """One entry of `$JS.API.STREAM.LIST` (raw: nats-py's StreamState drops `num_subjects`)."""
    info = api.StreamInfo.from_response(json.loads(json.dumps(raw)))
    state = info.state
    return {
        "name": info.config.name,
        "subjects": list(info.config.subjects or []),
        "messages": state.messages,
        "bytes": state.bytes,
        "distinct_subjects": int(raw.get("state", {}).get("num_subjects", 0)),
        "first_seq": state.first_seq,
        "last_seq": state.last_seq,
        "consumers": state.consumer_count,
    }


def last_activity(info: api.ConsumerInfo) -> datetime | None:
    """The later of the last delivery and the last ack (either means the consumer is alive)."""
    seen = [s.last_active for s in (info.delivered, info.ack_floor) if s is not None and s.last_active]
    return max(seen) if seen else None


def consumer_row(info: api.ConsumerInfo) -> dict[str, Any]:
    return {
        "stream": info.stream_name,
        "name": info.name,
        "filter_subject": info.config.filter_subject,
        "pending": info.num_pending or 0,
        "ack_pending": info.num_ack_pending or 0,
        "redelivered": info.num_redelivered or 0,
        "waiting": info.num_waiting or 0,
        "last_active": last_activity(info),
    }


async def list_streams(nc: Client, timeout: float) -> list[dict[str, Any]]:
    raws: list[dict[str, Any]] = []
    while True:
        page = await js_api(nc, "STREAM.LIST", {"offset": len(raws)}, timeout)
        raws += page.get("streams") or []
        if not page.get("streams") or len(raws) >= int(page.get("total", 0)):
            return sorted(raws, key=lambda r: str(r["config"]["name"]))


async def collect(nc: Client, timeout: float) -> dict[str, Any]:
    streams = [stream_row(raw) for raw in await list_streams(nc, timeout)]
    js = nc.jetstream(timeout=timeout)
    consumers: list[dict[str, Any]] = []
    for stream in streams:
        infos = await js.consumers_info(stream["name"])
        consumers += [consumer_row(c) for c in sorted(infos, key=lambda c: c.name)]
    return {"streams": streams, "consumers": consumers}


def render(status: dict[str, Any], out: Console) -> None:
    out.print(
        output.table(
            "Streams",
            ["Stream", "Messages", "Bytes", "Subjects", "Consumers", "Captures"],
            [
                (
                    s["name"],
                    s["messages"],
                    output.human_bytes(s["bytes"]),
                    s["distinct_subjects"],
                    s["consumers"],
                    " ".join(s["subjects"]),
                )
                for s in status["streams"]
            ],
        )
    )
    out.print()
    out.print(
        output.table(
            "Consumers",
            ["Stream", "Consumer", "Pending", "Ack pending", "Redelivered", "Waiting", "Last active"],
            [
                (
                    c["stream"],
                    c["name"],
                    c["pending"],
                    c["ack_pending"],
                    c["redelivered"],
                    c["waiting"],
                    output.ago(c["last_active"]),
                )
                for c in status["consumers"]
            ],
        )
    )


@click.group("bus")
def bus() -> None:
    """JetStream streams and consumers."""


@bus.command("status")
@json_option
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Streams (messages, bytes, subjects) and consumers (pending, ack pending, redelivered,
    last activity): the first thing to open on call."""

    async def run() -> dict[str, Any]:
        async with connect(ctx.settings) as nc:
            return await collect(nc, ctx.settings.timeout_seconds)

    data = asyncio.run(run())
    output.emit(data, as_json, lambda out: render(data, out))
