"""`python -m tripmesh_agent_runner` / `agent-runner`: configured only by the environment."""

from __future__ import annotations

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_agent_runner.app import create_app
from tripmesh_agent_runner.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_format, settings.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port,
          settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
