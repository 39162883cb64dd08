"""`gateway` / `python -m tripmesh_gateway`: configured only by environment variables."""

from __future__ import annotations

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_gateway.app import create_app
from tripmesh_gateway.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_format, settings.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
