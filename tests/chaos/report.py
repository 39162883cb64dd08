"""What every reliability test leaves behind: reports/reliability/<test>.json (the PR tier)
or reports/reliability-full/<test>.json (the full tier), so one tier's run never overwrites
the other's evidence.

A test builds one `ChaosReport`, records its parameters, every fault it injected (with the
time), the counts it observed and each oracle's verdict, then writes it, whether the test
passed or not (use it as a context manager, or call `write()` in a `finally`). Oracles are
recorded *before* they are asserted, so a failing run still says which oracle failed and
by how much. `tools/scripts/reliability_table.py` renders these files as the README's
reliability table: the README can only claim what a report holds.

    with ChaosReport("runner_kill_storm", tier="pr", plans=200, replicas=4) as report:
        report.fault("sigkill", target="agent-runner#2")
        ...
        report.count(attempted=200, lost=0)
        report.latencies("faulted", seconds_list)
        report.check("every plan terminal", stuck == [], f"{len(stuck)} stuck")
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "reliability"
FULL_REPORTS = ROOT / "reports" / "reliability-full"


def reports_dir(tier: str) -> Path:
    """Where a tier's reports go: the PR tier's beside the full tier's, never over them."""
    return REPORTS if tier == "pr" else FULL_REPORTS


COUNTS = (
    "attempted",
    "acked",
    "delivered",
    "redelivered",
    "duplicates_suppressed",
    "lost",
    "dead_lettered",
    "terminated",
)
"""The counts every report carries (None = not observed by this test)."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


class ChaosReport:
    def __init__(self, test: str, *, tier: str, **params: Any) -> None:
        self.test = test
        self.tier = tier
        self.params: dict[str, Any] = dict(params)
        self.started = time.time()
        self.code = _code_version()  # at the start: commits made while it runs are not what it ran
        self.faults: list[dict[str, Any]] = []
        self.counts: dict[str, int | None] = dict.fromkeys(COUNTS)
        self.extra: dict[str, Any] = {}
        self.latency: dict[str, dict[str, float | int | None]] = {}
        self.oracles: list[dict[str, Any]] = []
        self.path = reports_dir(tier) / f"{test}.json"

    # -- recording ---------------------------------------------------------------------------

    def fault(self, kind: str, **details: Any) -> None:
        """A fault injected now (`kind`: sigkill, sigterm, sigstop, nats_kill, nats_lame_duck,
        postgres_stop, postgres_start, poison, ...); `details` say where and how long."""
        self.faults.append({"at": round(time.time() - self.started, 3), "kind": kind, **details})

    def count(self, **counts: int | None) -> None:
        """Set counts: the standard ones (COUNTS) or any other the test observes."""
        for name, value in counts.items():
            if name in self.counts:
                self.counts[name] = value
            else:
                self.extra[name] = value

    def latencies(self, label: str, seconds: list[float]) -> None:
        """Plan latencies (POST to terminal event) under `label` ("baseline", "faulted")."""
        self.latency[label] = {
            "n": len(seconds),
            "p50": percentile(seconds, 50),
            "p99": percentile(seconds, 99),
            "max": max(seconds) if seconds else None,
        }

    def check(self, oracle: str, ok: bool, detail: Any = None) -> bool:
        """Record an oracle's verdict; returns `ok` so the test can assert on it afterwards."""
        self.oracles.append({"oracle": oracle, "ok": bool(ok), "detail": detail})
        return bool(ok)

    def assert_all(self) -> None:
        """Fail with every oracle that did not hold (after writing the report)."""
        self.write()
        failed = [o for o in self.oracles if not o["ok"]]
        assert not failed, f"{self.test}: oracles failed: {json.dumps(failed, default=str)[:4000]}"

    # -- output ------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "tier": self.tier,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 1),
            "machine": {"cpus": _cpus(), "python": platform.python_version(), "system": platform.platform()},
            "code": self.code,
            "params": self.params,
            "faults": self.faults,
            "counts": self.counts,
            "other_counts": self.extra,
            "latency_s": self.latency,
            "oracles": self.oracles,
            "passed": all(o["ok"] for o in self.oracles) and bool(self.oracles),
        }

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return self.path

    def __enter__(self) -> ChaosReport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.extra["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        self.write()


def _cpus() -> int | None:
    return os.cpu_count()


def _code_version(root: Path = ROOT) -> dict[str, Any]:
    """The commit the run measured, and whether the work tree differed from it outside
    `reports/` (the reports an earlier test of the same run wrote are not a code change)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": None if status is None else bool(status)}


__all__ = ["COUNTS", "FULL_REPORTS", "REPORTS", "ChaosReport", "percentile", "reports_dir"]
