"""The `tripctl` command tree (each group lives in its own module)."""

from __future__ import annotations

import click

from tripmesh_tripctl.bus import bus
from tripmesh_tripctl.cli_base import Ctx, OperatorGroup
from tripmesh_tripctl.dlq import dlq
from tripmesh_tripctl.doctor import doctor
from tripmesh_tripctl.ledger import ledger
from tripmesh_tripctl.plan import plan
from tripmesh_tripctl.settings import load
from tripmesh_tripctl.vectors import vectors


@click.group(cls=OperatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """tripctl: operate tripmesh (plans, the bus, dead letters, the ledger, vectors).

    Connects the way the services do: NATS_URL, DATABASE_URL, QDRANT_URL, GATEWAY_PORT
    (TRIPCTL_* names win); on a `make up` stack it reads the operator's NATS password from
    .tripmesh/nats/users.json. Every command prints tables, or JSON with --json."""
    ctx.obj = Ctx(load())


for group in (plan, bus, dlq, ledger, vectors, doctor):
    cli.add_command(group)
