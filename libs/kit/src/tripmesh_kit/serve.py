"""Run a service's ASGI app with uvicorn; SIGTERM triggers the lifespan shutdown (drain)."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

import uvicorn


def _stopped(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def serve(app: Any, host: str, port: int, drain_timeout: float) -> None:
    """Serve until SIGTERM/SIGINT, drain, and exit 0.

    uvicorn captures SIGTERM, runs the lifespan shutdown (our drain: stop fetching, finish
    in-flight messages), then restores the previous handler and re-raises the signal. With
    the default handler a clean drain would end with status -15, which supervisors read as a
    crash; the handler installed here turns that re-raised signal into exit 0.
    """
    signal.signal(signal.SIGTERM, _stopped)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines propagate to our (JSON) root handler
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(drain_timeout),
    )
    uvicorn.Server(config).run()
