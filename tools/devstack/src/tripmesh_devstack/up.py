"""`make up`: settings from the environment, the stack, the banner, Ctrl-C handling.

Environment (ARCHITECTURE §6, §9): `TRIPMESH_DATA_DIR` (default `./.tripmesh`),
`GATEWAY_PORT` (8080), `PLANNER_HTTP_PORT` (8081), `AGENT_RUNNER_HTTP_PORT` (8082),
`COST_LEDGER_HTTP_PORT` (8083), `VECTOR_SYNC_HTTP_PORT` (8084); `NATS_URL`, `DATABASE_URL`,
`QDRANT_URL` use servers you already run instead of starting embedded ones. Devstack's own:
`TRIPMESH_NATS_PORT` (4222), `TRIPMESH_NATS_MONITOR_PORT` (8222), `TRIPMESH_POSTGRES_PORT`
(55432), `TRIPMESH_AGENT_RUNNERS` (replicas, 1), `TRIPMESH_READY_TIMEOUT` (180 s),
`TRIPMESH_DRAIN_TIMEOUT` (20 s).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from tripmesh_devstack.services import SERVICES, default_services
from tripmesh_devstack.supervisor import Replica, Stack, StackError


@dataclass
class UpSettings:
    data_dir: Path = Path(".tripmesh")
    ports: dict[str, int] = field(default_factory=lambda: {n: p for n, (_, _, p) in SERVICES.items()})
    nats_url: str | None = None
    database_url: str | None = None
    qdrant_url: str | None = None
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    postgres_port: int = 55432
    agent_runners: int = 1
    ready_timeout: float = 180.0
    drain_timeout: float = 20.0
    infra_only: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpSettings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            data_dir=Path(env.get("TRIPMESH_DATA_DIR") or Path.cwd() / ".tripmesh").resolve(),
            ports={n: int(env.get(var) or d.ports[n]) for n, (_, var, _) in SERVICES.items()},
            nats_url=env.get("NATS_URL") or None,
            database_url=env.get("DATABASE_URL") or None,
            qdrant_url=env.get("QDRANT_URL") or None,
            nats_port=int(env.get("TRIPMESH_NATS_PORT") or d.nats_port),
            nats_monitor_port=int(env.get("TRIPMESH_NATS_MONITOR_PORT") or d.nats_monitor_port),
            postgres_port=int(env.get("TRIPMESH_POSTGRES_PORT") or d.postgres_port),
            agent_runners=int(env.get("TRIPMESH_AGENT_RUNNERS") or d.agent_runners),
            ready_timeout=float(env.get("TRIPMESH_READY_TIMEOUT") or d.ready_timeout),
            drain_timeout=float(env.get("TRIPMESH_DRAIN_TIMEOUT") or d.drain_timeout),
        )


def build_stack(settings: UpSettings, console: TextIO | None = sys.stdout) -> Stack:
    services = (
        []
        if settings.infra_only
        else default_services(ports=settings.ports, replicas={"agent-runner": settings.agent_runners})
    )
    return Stack(
        settings.data_dir,
        services,
        nats_url=settings.nats_url,
        database_url=settings.database_url,
        qdrant_url=settings.qdrant_url,
        nats_port=settings.nats_port,
        nats_monitor_port=settings.nats_monitor_port,
        postgres_port=settings.postgres_port,
        console=console,
        ready_timeout=settings.ready_timeout,
        drain_timeout=settings.drain_timeout,
    )


def redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def banner(stack: Stack) -> str:
    rows: list[tuple[str, str]] = []
    if "gateway" in stack.replicas:
        gw = stack.gateway_url
        rows += [
            ("gateway (REST + SSE)", f"{gw}/api/v1"),
            ("OpenAPI docs", f"{gw}/docs"),
            ("AsyncAPI docs", f"{gw}/asyncapi"),
        ]
    monitor = f"  (monitoring {stack.nats_monitor_url})" if stack.nats_monitor_url else ""
    rows.append(("NATS", redact(stack.nats_url) + monitor))
    rows.append(("PostgreSQL", redact(stack.database_url)))
    rows.append(
        ("Qdrant", redact(stack.qdrant_url) if stack.qdrant_url else f"local storage {stack.qdrant_path}")
    )
    others = [f"{r.tag} {r.url}" for r in stack.all_replicas() if r.spec.name != "gateway" or r.index]
    if others:
        rows.append(("service health", ", ".join(others)))
    secrets = [
        str(stack.data_dir / f)
        for f, on in (("nats/users.json", stack.nats), ("postgres", stack.postgres))
        if on
    ]
    if secrets:
        rows.append(("identities (passwords)", ", ".join(secrets) + "  (see tools/devstack/README.md)"))
    rows.append(("logs", str(stack.logs_dir)))
    width = max(len(k) for k, _ in rows)
    lines = ["", "tripmesh is up:"] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join([*lines, "Ctrl-C stops everything (services drain first).", ""])


DUPLICATE_SIGNAL_WINDOW = 2.0
"""Seconds during which a repeated SIGINT/SIGTERM is taken as the same Ctrl-C."""


class _Interrupted(Exception):
    pass


def run(settings: UpSettings, console: TextIO = sys.stdout) -> int:
    """Start, watch (restart crashed services with a back-off), stop on SIGINT/SIGTERM."""
    stack = build_stack(settings, console)

    first_signal_at: list[float] = []

    def hurry(signum: int, frame: FrameType | None) -> None:
        # A terminal's Ctrl-C reaches us twice when started through `uv run` (the terminal
        # signals the whole process group and uv forwards it again): a repeat within a
        # moment of the first is that echo, not an operator asking to skip the drain.
        if first_signal_at and time.monotonic() - first_signal_at[0] < DUPLICATE_SIGNAL_WINDOW:
            return
        stack.console.say("second signal: killing what is left")
        stack.hurry()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        first_signal_at.append(time.monotonic())
        for sig in previous:
            signal.signal(sig, hurry)  # from now on a signal must not break the clean-up
        raise _Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        stack.start()
        console.write(banner(stack) + "\n")
        console.flush()
        _watch(stack)
    except _Interrupted as exc:
        stack.console.say(f"{exc}: stopping (drain up to {settings.drain_timeout:g}s)")
        stack.stop()  # start() may have been interrupted after it stopped everything: idempotent
    except StackError as exc:
        console.write(f"\ntripmesh-up: {exc}\n")
        code = 1
    finally:
        for sig in previous:
            signal.signal(sig, hurry)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stack.console.say("stopped")
    return code


def _watch(stack: Stack) -> None:
    """A crashed service is restarted after 1, 2, 4 ... 30 s; the delay resets after a
    minute of uptime, so a crash loop does not spin but a rare crash recovers fast."""
    delays: dict[str, float] = {}
    due: dict[str, float] = {}
    since: dict[str, float] = {}
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        for replica in stack.crashed():
            tag = replica.tag
            if tag not in due:
                if now - since.get(tag, 0.0) > 60:
                    delays[tag] = 1.0
                delay = delays.get(tag, 1.0)
                code = replica.proc.returncode if replica.proc else None
                stack.console.say(
                    f"{tag} exited with code {code}; restarting in {delay:g}s "
                    f"(log: {stack.logs_dir / (replica.log_name + '.log')})"
                )
                due[tag] = now + delay
                delays[tag] = min(delay * 2, 30.0)
            elif now >= due[tag]:
                del due[tag]
                _restart(stack, replica)
                since[tag] = now


def _restart(stack: Stack, replica: Replica) -> None:
    stack.start_replica(replica.spec.name, replica.index, wait=False)
