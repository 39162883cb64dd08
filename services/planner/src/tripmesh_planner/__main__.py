"""`python -m tripmesh_planner` / `planner`: configured only by environment variables."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_planner.app import create_app
from tripmesh_planner.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    settings = Settings()
    configure_logging("planner", settings.log_format, settings.log_level)
    # uvicorn drains on SIGTERM (lifespan shutdown: stop fetching, finish in-flight), then
    # restores the previous handler and re-raises the signal; with the default handler that
    # would end a clean drain with status -15. This handler makes it exit 0 instead.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
