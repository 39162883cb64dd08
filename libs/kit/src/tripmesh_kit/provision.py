"""`python -m tripmesh_kit.provision`: create or update every stream and durable consumer.

For deployments where services run with NATS users that may not change streams (issue #8):
an operator identity (e.g. devstack's `admin`) provisions once, and the services run with
`<PREFIX>PROVISION_STREAMS=false`. The server URL, with the identity in it, comes from
`NATS_URL` (kept out of argv, which other local users can read).
"""

from __future__ import annotations

import asyncio
import os
import sys

from tripmesh_kit.bus import connect, provision


async def provision_all(url: str) -> None:
    nc = await connect(url, "tripmesh-provision")
    try:
        await provision(nc.jetstream())
    finally:
        await nc.close()


def main() -> int:
    url = os.environ.get("NATS_URL")
    if not url:
        print("tripmesh_kit.provision: set NATS_URL", file=sys.stderr)
        return 2
    asyncio.run(provision_all(url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
