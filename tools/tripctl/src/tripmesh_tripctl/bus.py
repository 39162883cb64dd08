"""`tripctl bus status`: every stream and durable consumer, with the numbers on-call reads
first (messages, bytes, subjects; pending, ack-pending, redelivered, last activity), and the
replicas each agent-runner consumer would want from KEDA.

"Wants" is KEDA's `nats-jetstream` arithmetic (deploy/k3s/components/keda): lag = pending +
ack pending, desired = ceil(lag / lagThreshold). A pool serving several agent types wants
the largest of its consumers' numbers, bounded by its ScaledObject's min/max replicas.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click
from nats.aio.client import Client
from nats.js import api
from rich.console import Console
from tripmesh_contracts.streams import AGENT_JOBS

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


def desired_replicas(lags: Iterable[tuple[int, int]], low: int = 0, high: int | None = None) -> int:
    """The HPA on KEDA's lag metric: ceil(lag / threshold) per (lag, threshold), the largest,
    clamped to [low, high]."""
    want = max((math.ceil(lag / threshold) for lag, threshold in lags), default=0)
    return max(want, low) if high is None else min(max(want, low), high)


def consumer_row(info: api.ConsumerInfo, lag_threshold: int) -> dict[str, Any]:
    pending, ack_pending = info.num_pending or 0, info.num_ack_pending or 0
    runner = info.stream_name == AGENT_JOBS.name
    return {
        "stream": info.stream_name,
        "name": info.name,
        "filter_subject": info.config.filter_subject,
        "pending": info.num_pending or 0,
        "ack_pending": info.num_ack_pending or 0,
        "redelivered": info.num_redelivered or 0,
        "waiting": info.num_waiting or 0,
        "last_active": last_activity(info),
        # only the runner pools scale on lag; None elsewhere
        "wants": desired_replicas([(pending + ack_pending, lag_threshold)]) if runner else None,
    }


async def list_streams(nc: Client, timeout: float) -> list[dict[str, Any]]:
    raws: list[dict[str, Any]] = []
    while True:
        page = await js_api(nc, "STREAM.LIST", {"offset": len(raws)}, timeout)
        raws += page.get("streams") or []
        if not page.get("streams") or len(raws) >= int(page.get("total", 0)):
            return sorted(raws, key=lambda r: str(r["config"]["name"]))


async def collect(nc: Client, timeout: float, lag_threshold: int = 16) -> dict[str, Any]:
    streams = [stream_row(raw) for raw in await list_streams(nc, timeout)]
    js = nc.jetstream(timeout=timeout)
    consumers: list[dict[str, Any]] = []
    for stream in streams:
        infos = await js.consumers_info(stream["name"])
        consumers += [consumer_row(c, lag_threshold) for c in sorted(infos, key=lambda c: c.name)]
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
            [
                "Stream",
                "Consumer",
                "Pending",
                "Ack pending",
                "Redelivered",
                "Waiting",
                "Last active",
                "Wants",
            ],
            [
                (
                    c["stream"],
                    c["name"],
                    c["pending"],
                    c["ack_pending"],
                    c["redelivered"],
                    c["waiting"],
                    output.ago(c["last_active"]),
                    "" if c.get("wants") is None else c["wants"],
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
    last activity, and for the agent runners the replicas KEDA would want at
    TRIPCTL_LAG_THRESHOLD): the first thing to open on call."""

    async def run() -> dict[str, Any]:
        async with connect(ctx.settings) as nc:
            return await collect(nc, ctx.settings.timeout_seconds, ctx.settings.lag_threshold)

    data = asyncio.run(run())
    output.emit(data, as_json, lambda out: render(data, out))
