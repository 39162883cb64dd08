"""`python -m tripmesh_agent_runner` / `agent-runner`: configured only by the environment."""

from __future__ import annotations

import signal
from types import FrameType

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_agent_runner.app import create_app
from tripmesh_agent_runner.settings import Settings


def _stopped_by_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_format, settings.log_level)
    # uvicorn handles SIGTERM itself (stop accepting, lifespan shutdown = broker drain), then
    # re-raises the signal into the handler that was installed before it, which by default
    # kills the process (-15) after a clean drain. A SIGTERM is an ordinary stop: exit 0.
    signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
