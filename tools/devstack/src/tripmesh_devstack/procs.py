"""Child processes that never outlive the process that started them.

Every child runs in its own session (process group): Ctrl-C in a terminal reaches only the
supervisor, which then stops the children in order (services drain before Postgres and NATS
go away), and a whole group can be signalled at once. On Linux each child also asks the
kernel for a parent-death signal (prctl PR_SET_PDEATHSIG), so a SIGKILLed supervisor or test
run leaves no orphans holding ports or data directories.

The kernel sends the parent-death signal when the *thread* that forked the child exits, not
the process. Children forked from a short-lived worker thread (asyncio.to_thread, an executor)
would be killed as soon as that thread retires, so every fork happens on one long-lived
daemon thread owned by this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: dlopen in a forked child of a threaded parent can deadlock.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

Popen = subprocess.Popen[bytes]


def _preexec(death_signal: int, parent_pid: int) -> Callable[[], None]:
    def run() -> None:  # runs in the child between fork and exec (after setuid, if any)
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return run


class _Spawner:
    """One daemon thread that performs every fork (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Popen], Future[Popen]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, make: Callable[[], Popen]) -> Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="devstack-spawner", daemon=True)
                self._thread.start()
        done: Future[Popen] = Future()
        self._jobs.put((make, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            make, done = self._jobs.get()
            try:
                done.set_result(make())
            except BaseException as exc:  # handed to the caller's thread
                done.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(
    argv: Sequence[str],
    *,
    death_signal: int = signal.SIGTERM,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.STDOUT,
    user: str | None = None,
    group: str | None = None,
    pass_fds: Sequence[int] = (),
) -> Popen:
    """Start `argv` in its own session with a parent-death signal; stdin is always closed."""
    parent = os.getpid()

    def make() -> Popen:
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,  # drop root's supplementary groups too
            preexec_fn=_preexec(death_signal, parent),
        )

    return _SPAWNER.submit(make)


def signal_group(proc: Popen, sig: int) -> None:
    """Signal the child's whole process group while the child is not yet reaped.

    Once reaped its pid (and so the group id) may be reused, so never signal after that.
    """
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(proc: Popen, sig: int = signal.SIGTERM, timeout: float = 20.0, *, group: bool = True) -> int:
    """`sig` to the group (or only the leader), wait up to `timeout`, then SIGKILL the group.

    Returns the exit code. `group=False` suits servers that manage their own children
    (the postmaster turns SIGINT into a fast shutdown; its backends must not get SIGINT too).
    """
    if proc.poll() is None:
        if group:
            signal_group(proc, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
    return proc.wait()


def kill_leftover(
    pid: int, matches: Callable[[psutil.Process], bool], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> bool:
    """Stop a process left by an earlier run (pid file), if it is still ours. True if one was found."""
    try:
        proc = psutil.Process(pid)
        if not matches(proc):
            return False
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
