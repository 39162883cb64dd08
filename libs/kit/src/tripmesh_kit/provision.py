"""`python -m tripmesh_kit.provision`: create or update every stream and durable consumer.

For deployments where services run with NATS users that may not change streams (issue #8):
an operator identity (e.g. devstack's `admin`) provisions once, and the services run with
`<PREFIX>PROVISION_STREAMS=false`. The server URL, with the identity in it, comes from
`NATS_URL` (kept out of argv, which other local users can read).

`TRIPMESH_STREAM_REPLICAS` (optional) overrides every stream's replica count: 3 on a
three-node JetStream cluster (deploy/k3s/overlays/ha; ARCHITECTURE.md §8: R1 local, R3 in a
cluster). Durable consumers inherit their stream's replicas.
"""

from __future__ import annotations

import asyncio
import os
import sys

from tripmesh_contracts.streams import ALL_STREAMS, StreamSpec

from tripmesh_kit.bus import connect, provision


def streams_with_replicas(replicas: int | None) -> list[StreamSpec]:
    if replicas is None:
        return list(ALL_STREAMS)
    return [spec.model_copy(update={"replicas": replicas}) for spec in ALL_STREAMS]


async def provision_all(url: str, replicas: int | None = None) -> None:
    nc = await connect(url, "tripmesh-provision")
    try:
        await provision(nc.jetstream(), streams=streams_with_replicas(replicas))
    finally:
        await nc.close()


def main() -> int:
    url = os.environ.get("NATS_URL")
    if not url:
        print("tripmesh_kit.provision: set NATS_URL", file=sys.stderr)
        return 2
    raw_replicas = os.environ.get("TRIPMESH_STREAM_REPLICAS", "").strip()
    if raw_replicas and not (raw_replicas.isdigit() and 1 <= int(raw_replicas) <= 5):
        print("tripmesh_kit.provision: TRIPMESH_STREAM_REPLICAS must be 1 to 5", file=sys.stderr)
        return 2
    asyncio.run(provision_all(url, int(raw_replicas) if raw_replicas else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
