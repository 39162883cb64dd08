"""`tripctl vectors reindex`: vector-sync's own `reindex` (see services_cli.py)."""

from __future__ import annotations

import click

from tripmesh_tripctl import output
from tripmesh_tripctl.cli_base import Ctx, json_option, pass_ctx
from tripmesh_tripctl.services_cli import run_service_command


@click.group("vectors")
def vectors() -> None:
    """The Qdrant read model of plans."""


@vectors.command("reindex")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the reindex.")
@json_option
@pass_ctx
def reindex(ctx: Ctx, timeout: float, as_json: bool) -> None:
    """Drop and recreate the collections and replay PLAN_CHANGES (runs `python -m
    tripmesh_vector_sync reindex`). With local Qdrant storage, stop vector-sync first: it
    holds the storage lock."""
    s = ctx.settings
    env = {"NATS_URL": s.operator_nats_url(), "LOG_FORMAT": "json", "TRIPMESH_DATA_DIR": str(s.data_dir)}
    if s.qdrant_url:
        env["QDRANT_URL"] = s.qdrant_url
    else:
        env["VECTOR_SYNC_QDRANT_PATH"] = str(s.resolved_qdrant_path())
    report = run_service_command("tripmesh_vector_sync", ["reindex"], env, timeout)
    output.emit(report, as_json, lambda out: out.print(output.key_values("vectors reindexed", report)))
