"""Children's output: written to `<data>/logs/<tag>.log`, echoed tagged `[service]` to the console.

Colour only when the console is a TTY (and NO_COLOR is unset), so piped or CI output stays
plain. Tags are padded to the longest name so the messages line up.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TextIO

from tripmesh_devstack import procs

_COLOURS = ["36", "32", "35", "33", "34", "96", "92", "95", "93", "94"]


class Console:
    def __init__(self, out: TextIO | None, color: bool | None = None) -> None:
        """`out=None`: files only (tests keep their output quiet; errors quote the log tail)."""
        self.out = out
        if color is None:
            color = out is not None and out.isatty() and "NO_COLOR" not in os.environ
        self.color = color
        self.width = 0
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}

    def register(self, tag: str) -> None:
        with self._lock:
            self.width = max(self.width, len(tag) + 2)
            base = tag.split("#")[0]  # replicas of a service share its colour
            self._colours.setdefault(base, _COLOURS[len(self._colours) % len(_COLOURS)])

    def prefix(self, tag: str) -> str:
        label = f"[{tag}]".ljust(self.width)
        if not self.color:
            return label
        return f"\x1b[{self._colours.get(tag.split('#')[0], '0')}m{label}\x1b[0m"

    def line(self, tag: str, text: str) -> None:
        if self.out is None:
            return
        with self._lock:
            self.out.write(f"{self.prefix(tag)} {text}\n")
            self.out.flush()

    def say(self, text: str) -> None:
        """A message from the supervisor itself."""
        if self.out is None:
            return
        with self._lock:
            self.out.write(f"{self.prefix('devstack')} {text}\n" if self.width else f"{text}\n")
            self.out.flush()


def start_tail(
    proc: procs.Popen, tag: str, log_path: Path, offset: int, console: Console
) -> threading.Thread:
    """Echo what `proc` appends to `log_path` (from `offset`) to the console until it exits.

    Children write to their log file directly, not to a pipe we read: if the supervisor is
    SIGKILLed, a pipe would break and a child logging its own drain would die of EPIPE
    half-way through shutting down. A file outlives us; the console copy is best effort.
    """

    def run() -> None:
        with log_path.open("rb") as fh:
            fh.seek(offset)
            pending = b""
            while True:
                exited = proc.poll() is not None  # read once more after the exit is seen
                chunk = fh.read(1 << 16)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    console.line(tag, raw.decode("utf-8", "replace").rstrip("\r"))
                if exited and not chunk:
                    if pending:
                        console.line(tag, pending.decode("utf-8", "replace"))
                    return
                if not chunk:
                    time.sleep(0.1)

    thread = threading.Thread(target=run, name=f"devstack-log-{tag}", daemon=True)
    thread.start()
    return thread
