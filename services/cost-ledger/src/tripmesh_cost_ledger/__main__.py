"""`python -m tripmesh_cost_ledger` / `cost-ledger`: run the service (configured only by the
environment); `... rebuild [--force]`: rebuild the ledger from the USAGE stream and exit."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys

from tripmesh_kit.logging import configure_logging
from tripmesh_kit.serve import serve

from tripmesh_cost_ledger.app import create_app
from tripmesh_cost_ledger.rebuild import RebuildRefusedError, rebuild
from tripmesh_cost_ledger.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cost-ledger", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    again = commands.add_parser(
        "rebuild", help="empty the ledger's events and totals and replay the USAGE stream"
    )
    again.add_argument(
        "--force", action="store_true", help="rebuild even if the stream holds fewer messages than the ledger"
    )
    return parser


def tune_gc() -> None:
    """Fewer, larger young collections, and the start-up heap out of every full collection.

    The ingest keeps batches of ~2,000 messages (each a Msg, a headers dict, a row) alive
    for a few hundred milliseconds: with the default threshold (700 allocations) every young
    collection rescans them and promotes them, and the old generations' collections walk the
    whole start-up heap too. Measured (gc callbacks in the consumer, bench/ledger/replay.py
    --events 100000): collections took 7-9 % of the consumer's CPU with the defaults,
    about 2 % with these settings."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.service_name, settings.log_format, settings.log_level)
    if args.command == "rebuild":
        try:
            report = asyncio.run(
                rebuild(
                    settings.database_url, settings.nats_url, force=args.force, batch_size=settings.batch_size
                )
            )
        except RebuildRefusedError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        print(json.dumps(report.as_dict()))
        return
    app = create_app(settings)
    tune_gc()
    serve(app, settings.http_host, settings.http_port, settings.drain_timeout_seconds)


if __name__ == "__main__":
    main()
