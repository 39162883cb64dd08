"""`python -m tripmesh_planner` / `planner`: configured only by environment variables."""

from __future__ import annotations

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_planner.app import create_app
from tripmesh_planner.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("planner", settings.log_format, settings.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
