"""Run a service's own maintenance command (`python -m <module> <command>`) with tripctl's
connection settings, and relay its JSON report.

Why a subprocess and not the bus: rebuilding the ledger or the vector collections needs the
service's store and migration code, which tripctl must not import (services are only reached
over the bus, HTTP or their own CLIs), and a bus request would need a new `svc.*` contract
for a long-running, rarely used operation. The services ship these commands for operators;
tripctl finds the connection details for them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tripmesh_tripctl.errors import OperatorError


def run_service_command(
    module: str, argv: list[str], env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    if importlib.util.find_spec(module) is None:
        raise OperatorError(
            f"{module} is not installed next to tripctl",
            hint="run tripctl from the workspace (`uv run tripctl ...`) or where the service is installed",
        )
    result = subprocess.run(
        [sys.executable, "-m", module, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise OperatorError(
            f"`python -m {module} {' '.join(argv)}` exited with {result.returncode}:\n" + "\n".join(tail),
            exit_code=result.returncode,
        )
    last = [line for line in result.stdout.splitlines() if line.strip()][-1:]
    try:
        report: dict[str, Any] = json.loads(last[0]) if last else {}
    except ValueError as exc:
        raise OperatorError(f"{module} {argv[0]} printed no JSON report: {result.stdout[-500:]}") from exc
    return report
