"""Children's output: one line at a time, tagged `[service]` on the console, copied to a file.

Colour only when the console is a TTY (and NO_COLOR is unset), so piped or CI output stays
plain. Tags are padded to the longest name so the messages line up.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO, TextIO

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


def start_pump(stream: IO[bytes], tag: str, log_path: Path, console: Console) -> threading.Thread:
    """Copy `stream` line by line to `log_path` (appending) and the console until EOF."""

    def run() -> None:
        with log_path.open("ab", buffering=0) as log:
            log.write(f"--- devstack: {tag} started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            for raw in iter(stream.readline, b""):
                log.write(raw)
                console.line(tag, raw.decode("utf-8", "replace").rstrip("\r\n"))
            stream.close()

    thread = threading.Thread(target=run, name=f"devstack-log-{tag}", daemon=True)
    thread.start()
    return thread
