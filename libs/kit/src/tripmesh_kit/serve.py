"""Run a service's ASGI app with uvicorn; SIGTERM triggers the lifespan shutdown (drain)."""

from __future__ import annotations

from typing import Any

import uvicorn


def serve(app: Any, host: str, port: int, drain_timeout: float) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(drain_timeout),
    )
    uvicorn.Server(config).run()
