"""`<data>/run`: the stack's lock and the pids of its services.

The lock is an flock, which the kernel releases when its holder dies, even by SIGKILL: a
second `make up` on the same data never meets a stale lock, while two live ones refuse to
share. The pid list lets a later run stop services that outlived their supervisor (should a
parent-death signal ever be missed), matched by creation time so a reused pid is left alone.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import psutil

from tripmesh_devstack import procs
from tripmesh_devstack.services import StackError


class LockedError(StackError):
    pass


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None

    @property
    def pids_path(self) -> Path:
        return self.path / "services.json"

    def lock(self) -> None:
        if self._lock is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / "stack.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise LockedError(f"another stack (pid {holder}) is running on {self.path.parent}") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def record(self, pids: Iterable[int]) -> None:
        entries = []
        for pid in pids:
            try:
                entries.append({"pid": pid, "created": psutil.Process(pid).create_time()})
            except psutil.Error:
                continue
        self.path.mkdir(parents=True, exist_ok=True)
        self.pids_path.write_text(json.dumps(entries))

    def stop_leftovers(self, report: Callable[[str], None]) -> None:
        try:
            entries: list[dict[str, Any]] = json.loads(self.pids_path.read_text())
        except (OSError, ValueError):
            return
        for entry in entries:
            pid, created = int(entry["pid"]), entry.get("created")

            def same(proc: psutil.Process, created: Any = created) -> bool:
                return bool(proc.create_time() == created)

            if procs.kill_leftover(pid, same):
                report(f"stopped a leftover service process (pid {pid})")
        self.pids_path.unlink(missing_ok=True)

    def clear(self) -> None:
        if self._lock is not None:  # never another live stack's list
            self.pids_path.unlink(missing_ok=True)
