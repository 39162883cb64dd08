"""`python -m bench.stack.control --port N --database-url URL`: the control, one process."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from bench.stack.control.app import create_app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.stack.control", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--checkpoint-pool-size", type=int, default=2, help="as the planner's default (2)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = create_app(args.database_url, checkpoint_pool_size=args.checkpoint_pool_size)
    # the gateway's own server settings: one uvicorn worker, no access log
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


main()
