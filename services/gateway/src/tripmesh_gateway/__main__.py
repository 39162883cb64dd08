"""`gateway` / `python -m tripmesh_gateway`: configured only by environment variables.

gateway                       serve the API (also: `gateway serve`)
gateway grant-admin <email>   make an existing account an admin
gateway revoke-admin <email>  make it a plain user again
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_gateway.admin import set_role_command
from tripmesh_gateway.app import create_app
from tripmesh_gateway.settings import Settings
from tripmesh_gateway.store import Role

ROLE_COMMANDS = {"grant-admin": Role.ADMIN, "revoke-admin": Role.USER}


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="gateway", description="tripmesh HTTP/SSE gateway")
    commands = cli.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API (the default)")
    for name, role in ROLE_COMMANDS.items():
        sub = commands.add_parser(name, help=f"give an existing account the {role.value} role")
        sub.add_argument("email")
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging("gateway", settings.log_format, settings.log_level)
    if args.command in ROLE_COMMANDS:
        raise SystemExit(asyncio.run(set_role_command(settings, args.email, ROLE_COMMANDS[args.command])))
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
