"""One short-lived NATS connection per command (an operator's CLI never waits forever)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoServersError

from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.settings import Settings


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Client]:
    url = settings.operator_nats_url()
    try:
        nc = await nats.connect(
            servers=[u.strip() for u in url.split(",")],
            name="tripctl",
            connect_timeout=settings.timeout_seconds,
            max_reconnect_attempts=1,
            allow_reconnect=False,
        )
    except (NoServersError, OSError, TimeoutError) as exc:
        raise OperatorError(
            f"cannot reach NATS at {redact(settings.nats_url)}: {type(exc).__name__} {exc}",
            hint="start the stack (`make up`) or set NATS_URL / TRIPCTL_NATS_URL",
        ) from exc
    except nats.errors.Error as exc:
        raise OperatorError(
            f"NATS refused tripctl at {redact(settings.nats_url)}: {exc}",
            hint="tripctl needs the operator identity: TRIPCTL_NATS_USER/TRIPCTL_NATS_PASSWORD, "
            "credentials in NATS_URL, or <TRIPMESH_DATA_DIR>/nats/users.json",
        ) from exc
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def redact(url: str) -> str:
    """Drop `user:password@` from every URL of a comma-separated list."""
    out = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        if sep and "@" in rest:
            rest = rest.split("@", 1)[1]
        out.append(f"{scheme}{sep}{rest}" if sep else part.strip())
    return ",".join(out)


async def js_api(nc: Client, subject: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A raw JetStream API call; an error reply raises OperatorError."""
    reply = await nc.request(f"$JS.API.{subject}", json.dumps(request).encode(), timeout=timeout)
    body: dict[str, Any] = json.loads(reply.data)
    if error := body.get("error"):
        raise OperatorError(f"JetStream {subject}: {error.get('description', error)}")
    return body
