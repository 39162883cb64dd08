"""The control as the bench's `System`: an embedded Postgres of its own, then the one process.

Postgres is the same embedded server, with the same configuration, as tripmesh's stack runs
(tripmesh_devstack.postgres.PostgresServer), and its CPU and memory are accounted to the
control exactly as the stack's Postgres is to tripmesh (`pids()`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

import httpx
from tripmesh_devstack.ports import free_port
from tripmesh_devstack.postgres import PostgresServer

from bench.stack.llm_server import LlmServer

ROOT = Path(__file__).resolve().parents[3]


class ControlSystem:
    name = "control"

    def __init__(self, workdir: Path, llm: LlmServer, *, warm_restart: bool = True) -> None:
        self.workdir = workdir
        self.warm_restart = warm_restart
        self.env = {**os.environ, **llm.agent_env(), "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
        self.port = free_port()
        self.postgres = PostgresServer(workdir / "postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self.console: TextIO = (workdir / "control.log").open("a")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> dict[str, float]:
        """Cold: a fresh Postgres data directory; warm: both stopped and started again."""
        times = {"cold": self._timed_start()}
        if self.warm_restart:
            self._stop()
            times["warm"] = self._timed_start()
        return times

    def _timed_start(self, timeout: float = 180.0) -> float:
        started = time.monotonic()
        self.postgres.start()
        argv = [sys.executable, "-m", "bench.stack.control", "--port", str(self.port)]
        argv += ["--database-url", self.postgres.url]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = started + timeout
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"the control did not get ready (log: {self.workdir / 'control.log'})")
            time.sleep(0.1)

    def pids(self) -> dict[str, int | None]:
        control = self.proc.pid if self.proc is not None and self.proc.poll() is None else None
        return {"control": control, "postgres": self.postgres.pid}

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.postgres.running:
            self.postgres.stop("fast")

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            self.console.close()
