"""`tripmesh-up` / `python -m tripmesh_devstack`: what `make up` runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tripmesh_devstack.up import UpSettings, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tripmesh-up",
        description="Start embedded NATS (JetStream) and PostgreSQL, Qdrant local storage and the "
        "five tripmesh services; Ctrl-C stops everything. Configured by environment "
        "variables (TRIPMESH_DATA_DIR, GATEWAY_PORT, NATS_URL, DATABASE_URL, QDRANT_URL, ...).",
    )
    parser.add_argument("--data-dir", type=Path, help="overrides TRIPMESH_DATA_DIR")
    parser.add_argument("--agent-runners", type=int, help="agent-runner replicas (TRIPMESH_AGENT_RUNNERS)")
    parser.add_argument(
        "--infra-only",
        action="store_true",
        help="start NATS and PostgreSQL only, e.g. to run a service from your IDE",
    )
    args = parser.parse_args(argv)
    settings = UpSettings.from_env()
    if args.data_dir:
        settings.data_dir = args.data_dir.resolve()
    if args.agent_runners:
        settings.agent_runners = args.agent_runners
    settings.infra_only = args.infra_only
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
