"""A fixed CPU workload, timed at the start of a benchmark and recorded in its report.

This machine is shared, and its speed per CPU second is not constant: on 2026-11-23 the ledger
replay (bench/ledger) of the same 1,000,000 events through the same code spent about 1.8x less
CPU per event at 23:45 than at 22:27 (consumer 44 vs 79 us, Postgres 29 vs 52 us). Figures
from two runs are comparable only when their calibrations are close; a report without one
cannot say. The workload is single-threaded pure Python plus hashing, like most of tripmesh's
CPU; the figure is the best of a few repeats, in milliseconds (lower = faster machine).
"""

from __future__ import annotations

import hashlib
import time


def _work() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    digest = b"tripmesh"
    for _ in range(200_000):
        digest = hashlib.sha256(digest).digest()
    return time.perf_counter() - started


def cpu_calibration_ms(repeats: int = 3) -> float:
    """Milliseconds for the fixed workload (best of `repeats`); ~290 ms measured at 23:45."""
    return round(min(_work() for _ in range(repeats)) * 1000, 1)
