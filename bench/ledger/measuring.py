"""Measuring helpers for the ledger benchmark: the service as a process, CPU seconds per
process tree, the service's own counters, and a py-spy profile's summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
from tripmesh_devstack import procs
from tripmesh_devstack.ports import free_port


def cpu_seconds(pid: int | None, *, tree: bool = False) -> float | None:
    """User + system CPU of a process; with `tree`, also of its children, live (their own
    times) and exited (the `children_*` times the kernel folds into the parent)."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system
        if tree:
            total += t.children_user + t.children_system
            for child in proc.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.NoSuchProcess:
                    pass
        return float(total)
    except psutil.NoSuchProcess:
        return None


class LedgerProcess:
    """`python -m tripmesh_cost_ledger`, configured only by its environment, as `make up` runs it."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.env = {**os.environ, **env, "COST_LEDGER_HTTP_PORT": str(self.port), "LOG_FORMAT": "json"}
        self.proc: procs.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = procs.spawn([sys.executable, "-m", "tripmesh_cost_ledger"], env=self.env, stdout=log)
        log.close()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"cost-ledger exited ({self.proc.returncode}):\n{procs.tail(self.log_path)}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"cost-ledger not ready in {timeout} s:\n{procs.tail(self.log_path)}")

    def counters(self) -> dict[str, float]:
        """The ledger's own counters from /metrics (rows added, duplicates, rejected)."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        wanted = {
            "tripmesh_ledger_events_ingested_total": "ingested",
            "tripmesh_ledger_duplicates_total": "duplicates",
            "tripmesh_messages_redelivered_total": "redelivered",
            "tripmesh_ledger_batch_size_count": "batches",
            "tripmesh_ledger_batch_size_sum": "batched_messages",
        }
        found: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
            if m and m.group(1) in wanted:
                key = wanted[m.group(1)]
                found[key] = found.get(key, 0.0) + float(m.group(3))
        found["rejected"] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tripmesh_ledger_events_rejected_total{")
        )
        return found

    def stop(self) -> int:
        assert self.proc is not None
        return procs.stop_process(self.proc, timeout=60)


class LedgerReplicas:
    """N cost-ledger processes sharing the durable, as replicas of one deployment; measured
    as one consumer (CPU summed, counters summed; py-spy samples the first)."""

    def __init__(self, log_dir: Path, env: dict[str, str], replicas: int) -> None:
        self.members = [LedgerProcess(log_dir / f"cost-ledger-{n}.log", env) for n in range(replicas)]
        self.log_path = self.members[0].log_path

    @property
    def pid(self) -> int:
        return self.members[0].pid

    def start(self) -> None:
        for member in self.members:
            member.start()

    def exited(self) -> bool:
        return any(m.proc is not None and m.proc.poll() is not None for m in self.members)

    def cpu(self) -> float | None:
        seconds = [cpu_seconds(m.pid) for m in self.members]
        return None if None in seconds else sum(s for s in seconds if s is not None)

    def wait_ready(self) -> None:
        for member in self.members:
            member.wait_ready()

    def counters(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for member in self.members:
            for key, value in member.counters().items():
                total[key] = total.get(key, 0.0) + value
        return total

    def stop(self) -> int:
        codes = [member.stop() for member in self.members]
        return max(codes, key=abs)


def start_profiler(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy (fetched by uvx, not a project dependency). `--gil`: samples of the thread that
    holds the GIL, i.e. Python actually running, not idle pool threads."""
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = ["uvx", "--from", "py-spy", "py-spy", "record", "--gil", "--format", "raw", "--rate", "100",
            "--duration", str(int(seconds)), "--pid", str(pid), "--output", str(output)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize_profile(path: Path, top: int = 40) -> dict[str, Any]:
    """Share of samples per function: `self` (innermost frame) and `inclusive` (anywhere on the
    stack, counted once per stack): where the consumer's time goes."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack_text.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counts: Counter[str]) -> dict[str, float]:
        return {k: round(v / max(total, 1), 3) for k, v in counts.most_common(top)}

    return {"samples": total, "self": share(self_time), "inclusive": share(inclusive)}


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"
