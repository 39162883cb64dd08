"""Run the real `tripctl` console script from tests (the one `uv sync` installs)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def console_script() -> Path:
    """`tripctl` beside the running interpreter (the workspace's .venv/bin)."""
    return Path(sys.executable).parent / "tripctl"


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"tripctl exited {self.code}: {self.stderr}{self.stdout}"
        return json.loads(self.stdout)


async def run_tripctl(*args: str, env: Mapping[str, str], timeout: float = 120.0) -> Ran:
    """The console script as an operator runs it, with `env` on top of ours (minus any
    TRIPCTL_* of the caller's, so a developer's own settings never leak into a test)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIPCTL_")}
    proc = await asyncio.create_subprocess_exec(
        str(console_script()),
        *args,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Ran(proc.returncode or 0, out.decode(), err.decode())
