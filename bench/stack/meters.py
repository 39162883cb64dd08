"""CPU seconds and peak RSS per process, from the kernel's process accounting (psutil).

A named process is a root pid and its descendants (Postgres: the postmaster and its backends).
CPU = the root's user + system + its reaped children's, plus its live descendants' user +
system: a backend that exits mid-window moves from the live sum into the root's children
counters, so nothing is lost or counted twice. Memory is sampled two ways: RSS summed over the
group (what `ps` shows; the Postgres sum overstates, its backends share buffers) and PSS
summed over the group (shared pages split between their users: these sums add up, so the
stack's total is a sum of PSS).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping

import psutil

Pids = Mapping[str, int | None]


def _group(pid: int, with_children: bool) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *(root.children(recursive=True) if with_children else [])]


def cpu_seconds(pids: Pids, own_pid: int | None = None) -> dict[str, float]:
    """CPU seconds each named group has used since it started. `own_pid` (the bench) is
    counted without its children: they are the stack, named on their own."""
    totals: dict[str, float] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        total = 0.0
        try:
            group = _group(pid, pid != own_pid)
        except psutil.Error:
            continue
        for index, proc in enumerate(group):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
            if index == 0 and pid != own_pid:
                total += t.children_user + t.children_system
        totals[name] = total
    return totals


def memory_bytes(pids: Pids, own_pid: int | None = None) -> dict[str, tuple[int, int]]:
    """(RSS, PSS) of each named group; PSS falls back to RSS where the kernel has no smaps."""
    sizes: dict[str, tuple[int, int]] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            group = _group(pid, pid != own_pid)
        except psutil.Error:
            continue
        rss = pss = 0
        for proc in group:
            try:
                full = proc.memory_full_info()
            except psutil.Error:
                continue
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
        sizes[name] = (rss, pss)
    return sizes


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process, ours or not)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class PeakMemory:
    """Samples RSS and PSS per group every `interval` seconds in a thread; keeps the peaks."""

    def __init__(self, pids: Callable[[], Pids], own_pid: int | None, interval: float = 1.0) -> None:
        self.pids, self.own_pid, self.interval = pids, own_pid, interval
        self.rss: dict[str, int] = {}
        self.pss: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, (rss, pss) in memory_bytes(self.pids(), self.own_pid).items():
                self.rss[name] = max(rss, self.rss.get(name, 0))
                self.pss[name] = max(pss, self.pss.get(name, 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
