"""`python -m tripmesh_vector_sync` / `vector-sync`: run the service (configured only by the
environment); `... reindex`: rebuild the collections from PLAN_CHANGES and exit;
`... measure-embed [-n N]`: time the configured embedder on plan texts and exit."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_vector_sync.app import create_app
from tripmesh_vector_sync.measure import measure_embed
from tripmesh_vector_sync.reindex import run_reindex
from tripmesh_vector_sync.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vector-sync", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "reindex",
        help="drop and recreate the collections for the configured embedder and "
        "replay PLAN_CHANGES (stop the service first in local mode)",
    )
    measure = commands.add_parser("measure-embed", help="time the configured embedder")
    measure.add_argument("-n", type=int, default=500, help="number of plan texts")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.service_name, settings.log_format, settings.log_level)
    if args.command == "reindex":
        try:
            report = asyncio.run(run_reindex(settings))
        except RuntimeError as exc:
            if "already accessed by another instance" not in str(exc):
                raise
            # local storage is locked by one process: the running service holds it
            print(f"refused: stop vector-sync first, it holds the local storage ({exc})", file=sys.stderr)
            raise SystemExit(2) from exc
        print(json.dumps(report.as_dict()))
        return
    if args.command == "measure-embed":
        print(json.dumps(measure_embed(settings, args.n)))
        return
    serve(create_app(settings), settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
