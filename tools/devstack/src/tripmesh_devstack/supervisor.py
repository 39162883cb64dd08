"""`Stack`: embedded NATS + Postgres (+ Qdrant local storage) and the services as processes.

This is the engine of `make up` and of the e2e tests, which start the system exactly the
same way. Data layout under `data_dir`: `nats/`, `postgres/`, `qdrant/`, `logs/<tag>.log`,
`run/` (an flock held while the stack runs, released by the kernel even after SIGKILL, and
the pids of the running services so a later run can stop any that survived).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

import httpx

from tripmesh_devstack import procs
from tripmesh_devstack.access import StackAccess
from tripmesh_devstack.logs import Console, start_tail
from tripmesh_devstack.nats import NatsServer
from tripmesh_devstack.ports import free_ports, port_is_free
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_devstack.rundir import RunDir
from tripmesh_devstack.services import Replica, ServiceSpec, StackError

__all__ = ["Replica", "ServiceSpec", "Stack", "StackError"]


class Stack:
    def __init__(
        self,
        data_dir: Path | str,
        services: Sequence[ServiceSpec] = (),
        *,
        nats_url: str | None = None,
        database_url: str | None = None,
        qdrant_url: str | None = None,
        nats_port: int = 0,
        nats_monitor_port: int = 0,
        postgres_port: int = 0,
        env: Mapping[str, str] | None = None,
        console: TextIO | None = None,
        color: bool | None = None,
        ready_timeout: float = 180.0,
        drain_timeout: float = 20.0,
    ) -> None:
        """Ports of 0 are free ports, picked together now (so they never collide) and kept
        across restarts. `*_url` given: use that server, start none. `env` goes to every
        service (after the stack's own variables, before each spec's)."""
        self.data_dir = Path(data_dir).resolve()
        self.specs = {spec.name: spec for spec in services}
        self.extra_env = dict(env or {})
        self.console = Console(console, color)
        self.ready_timeout = ready_timeout
        self.drain_timeout = drain_timeout
        self.qdrant_url = qdrant_url
        self._hurry = threading.Event()
        self.run_dir = RunDir(self.data_dir / "run")

        wanted = [nats_port, nats_monitor_port] if nats_url is None else []
        wanted += [postgres_port] if database_url is None else []
        wanted += [spec.port for spec in services for _ in range(spec.replicas)]
        picked = iter(free_ports(sum(1 for p in wanted if p == 0)))
        chosen = iter([p or next(picked) for p in wanted])

        # Servers we start get one identity per service (issue #8; see access.py).
        self.access = StackAccess(self.data_dir, nats=nats_url is None, postgres=database_url is None)
        self.nats = (
            None
            if nats_url
            else NatsServer(
                self.data_dir / "nats",
                port=next(chosen),
                monitor_port=next(chosen),
                users=self.access.nats_users(),
                auth_callout=self.access.nats_callout(),
            )
        )
        self.postgres = (
            None if database_url else PostgresServer(self.data_dir / "postgres", port=next(chosen))
        )
        self._nats_url, self._database_url = nats_url, database_url
        self.replicas: dict[str, list[Replica]] = {}
        for spec in services:
            self.replicas[spec.name] = []
            for index in range(spec.replicas):
                port = next(chosen)
                override = spec.env_for(index).get(spec.port_env)
                self._add(spec, index, int(override) if override and index > 0 else port)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def nats_url(self) -> str:
        """The operator's URL: on our own server, the `admin` identity is in it."""
        return self.access.admin_nats_url(self.nats) if self.nats else str(self._nats_url)

    @property
    def nats_monitor_url(self) -> str | None:
        return self.nats.monitor_url if self.nats else None

    @property
    def database_url(self) -> str:
        """The operator's URL (on our own server: the superuser, with its password)."""
        return self.postgres.url if self.postgres else str(self._database_url)

    @property
    def qdrant_path(self) -> Path | None:
        return None if self.qdrant_url else self.data_dir / "qdrant"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def env(self) -> dict[str, str]:
        """What every service gets on top of our own environment."""
        shared = {
            "NATS_URL": self.nats.url if self.nats else self.nats_url,  # identities: service_env
            "DATABASE_URL": self.database_url,
            "TRIPMESH_DATA_DIR": str(self.data_dir),
            # readable lines, coloured when the console we echo them to is a terminal
            "LOG_FORMAT": "color" if self.console.color else "console",
            "PYTHONUNBUFFERED": "1",  # lines reach the log as they are written
        }
        if self.qdrant_url:
            shared["QDRANT_URL"] = self.qdrant_url
        else:
            shared["VECTOR_SYNC_QDRANT_PATH"] = str(self.qdrant_path)
        return {**shared, **self.extra_env}

    def service_env(self, name: str) -> dict[str, str]:
        """What service `name` gets on top of `env`: its own NATS user and database role
        on servers we started (and no superuser URL), nothing otherwise."""
        return self.access.service_env(name, self.nats, self.postgres)

    def replica(self, name: str, index: int = 0) -> Replica:
        try:
            return self.replicas[name][index]
        except (KeyError, IndexError):
            raise StackError(f"no replica {index} of service {name!r}") from None

    def url(self, name: str, index: int = 0) -> str:
        return self.replica(name, index).url

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    def log_path(self, name: str, index: int = 0) -> Path:
        return self.logs_dir / f"{self.replica(name, index).log_name}.log"

    def pid(self, name: str, index: int = 0) -> int | None:
        replica = self.replica(name, index)
        return replica.proc.pid if replica.proc is not None and replica.running else None

    def all_replicas(self) -> list[Replica]:
        return [r for group in self.replicas.values() for r in group]

    # -- whole-stack lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Infrastructure first, then every service; returns once all answer /readyz."""
        try:
            self.run_dir.lock()
            self.run_dir.stop_leftovers(self.console.say)
            for sub in ("logs", "qdrant"):
                (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
            if self.nats:
                self.console.say(f"starting NATS (JetStream) on {self.nats.url}")
                self.nats.start()
                self.access.provision_streams(self.nats, self.console.say)
            if self.postgres:
                self.console.say(f"starting PostgreSQL on 127.0.0.1:{self.postgres.port}")
                self.postgres.start()
                self.access.ensure_roles(self.postgres)
            for replica in self.all_replicas():
                self._launch(replica)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM every service (they drain), SIGKILL whatever is left after `drain_timeout`,
        then stop Postgres (fast) and NATS. Idempotent; `hurry()` cuts the waits short."""
        live = [r for r in self.all_replicas() if r.running]
        for replica in live:
            replica.stopping = True
            assert replica.proc is not None
            procs.signal_group(replica.proc, signal.SIGTERM)
        self._reap(live, time.monotonic() + self.drain_timeout)
        if self.postgres and self.postgres.running:
            self.postgres.stop("immediate" if self._hurry.is_set() else "fast")
        if self.nats and self.nats.running:
            if self._hurry.is_set():
                self.nats.kill()
            else:
                self.nats.stop()
        self.run_dir.clear()
        self.run_dir.unlock()

    def hurry(self) -> None:
        """A second Ctrl-C: stop waiting for drains, kill what is left."""
        self._hurry.set()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- one replica -----------------------------------------------------------------------

    def kill(self, name: str, index: int = 0, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the replica's process group (SIGKILL: as a crash; waits for it)."""
        replica = self.replica(name, index)
        if replica.proc is None or not replica.running:
            return
        replica.stopping = True
        procs.signal_group(replica.proc, sig)
        if sig == signal.SIGKILL:
            self._reap([replica], time.monotonic() + 10)

    def terminate(self, name: str, index: int = 0, timeout: float | None = None) -> int | None:
        """Graceful stop (SIGTERM, drain), SIGKILL after `timeout`. Returns the exit code."""
        replica = self.replica(name, index)
        if replica.proc is None:
            return None
        if replica.running:
            replica.stopping = True
            procs.signal_group(replica.proc, signal.SIGTERM)
            wait = self.drain_timeout if timeout is None else timeout
            self._reap([replica], time.monotonic() + wait)
        return replica.proc.returncode

    def start_replica(self, name: str, index: int = 0, wait: bool = True) -> None:
        """(Re)start a stopped or crashed replica with its port and environment."""
        replica = self.replica(name, index)
        if replica.running:
            return
        self._launch(replica)
        if wait:
            self.wait_ready([replica])

    def restart(self, name: str, index: int = 0, *, kill: bool = False, wait: bool = True) -> None:
        if kill:
            self.kill(name, index)
        else:
            self.terminate(name, index)
        self.start_replica(name, index, wait=wait)

    def add_replica(self, name: str, env: Mapping[str, str] | None = None, wait: bool = True) -> int:
        """Scale out by one: a new replica (free port, `env` on top of the spec's). Its index."""
        spec = self.specs[name]
        replica = self._add(spec, len(self.replicas[name]), free_ports(1)[0], env)
        self._launch(replica)
        if wait:
            self.wait_ready([replica])
        return replica.index

    def crashed(self) -> list[Replica]:
        """Replicas that exited without being asked to."""
        return [r for r in self.all_replicas() if r.crashed]

    def wait_ready(self, replicas: Iterable[Replica] | None = None, timeout: float | None = None) -> None:
        """Until each replica's readiness URL answers 200. Raises StackError, quoting the
        replica's log, when one exits first or the timeout passes."""
        pending = list(self.all_replicas() if replicas is None else replicas)
        limit = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for replica in list(pending):
                    if replica.proc is None or replica.proc.poll() is not None:
                        code = replica.proc.returncode if replica.proc else None
                        raise StackError(
                            self._failure(replica, f"exited with code {code} before it was ready")
                        )
                    try:
                        status = http.get(replica.url + replica.spec.ready_path).status_code
                        last[replica.tag] = f"HTTP {status}"
                        if status == 200:
                            pending.remove(replica)
                            self.console.say(f"{replica.tag} ready on {replica.url}")
                    except httpx.HTTPError as exc:
                        last[replica.tag] = type(exc).__name__
                if pending and time.monotonic() > deadline:
                    replica = pending[0]
                    raise StackError(
                        self._failure(
                            replica,
                            f"not ready after {limit:g}s (last answer: {last.get(replica.tag, 'none')})",
                        )
                    )
                if pending:
                    time.sleep(0.2)

    # -- internals -------------------------------------------------------------------------

    def _add(self, spec: ServiceSpec, index: int, port: int, env: Mapping[str, str] | None = None) -> Replica:
        replica = Replica(spec, index, port, env={**spec.env_for(index), **(env or {})})
        self.replicas[spec.name].append(replica)
        self.console.register(replica.tag)
        return replica

    def _launch(self, replica: Replica) -> None:
        env = {**os.environ, **self.env}
        for name in self.access.withheld(replica.spec.name, self.nats, self.postgres):
            env.pop(name, None)  # the superuser's DATABASE_URL, from a service with its own role
        env.update({**self.service_env(replica.spec.name), **replica.env})
        env[replica.spec.port_env] = str(replica.port)
        if not self.qdrant_url:
            env.pop("QDRANT_URL", None)  # an inherited one would override the local storage
        if not port_is_free(replica.port):
            # Otherwise readiness could be answered by whatever holds the port (an old stack).
            raise StackError(f"{replica.tag}: port {replica.port} ({replica.spec.port_env}) is in use")
        log_path = self.logs_dir / f"{replica.log_name}.log"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        replica.stopping = False
        with log_path.open("ab") as log:
            log.write(
                f"--- devstack: {replica.tag} started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode()
            )
            log.flush()
            offset = log.tell()
            # The child appends to its log file itself (see logs.start_tail for why not a pipe).
            replica.proc = procs.spawn(
                replica.spec.command(), env=env, stdout=log, death_signal=signal.SIGTERM
            )
        if self.console.out is not None:
            replica.pump = start_tail(replica.proc, replica.tag, log_path, offset, self.console)
        self.run_dir.record(r.proc.pid for r in self.all_replicas() if r.proc is not None and r.running)

    def _reap(self, replicas: list[Replica], deadline: float) -> None:
        while any(r.running for r in replicas) and time.monotonic() < deadline and not self._hurry.is_set():
            time.sleep(0.05)
        for replica in replicas:
            assert replica.proc is not None
            if replica.running:
                self.console.say(f"{replica.tag} did not stop in time: SIGKILL")
                procs.signal_group(replica.proc, signal.SIGKILL)
            replica.proc.wait()
            if replica.pump is not None:
                replica.pump.join(5)

    def _failure(self, replica: Replica, what: str) -> str:
        log = self.logs_dir / f"{replica.log_name}.log"
        return f"{replica.tag} {what}. Last lines of {log}:\n{procs.tail(log)}"
