"""`make up` (tripmesh-up): settings, banner, and its processes: Ctrl-C stops everything,
SIGKILL of the supervisor leaves no orphan, and the next start works on the same data."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from tripmesh_devstack import SERVICES, Stack, default_services, free_ports
from tripmesh_devstack.up import UpSettings, banner, redact

HERE = Path(__file__).parent


def test_default_services_as_make_up_runs_them() -> None:
    specs = {s.name: s for s in default_services(replicas={"agent-runner": 2})}
    assert list(specs) == ["gateway", "planner", "agent-runner", "cost-ledger", "vector-sync"]
    assert [s.port for s in specs.values()] == [8080, 8081, 8082, 8083, 8084]
    assert specs["gateway"].port_env == "GATEWAY_PORT"
    assert specs["agent-runner"].port_env == "AGENT_RUNNER_HTTP_PORT"
    assert specs["agent-runner"].replicas == 2
    assert specs["planner"].command() == [sys.executable, "-m", "tripmesh_planner"]
    assert all(s.port == 0 for s in default_services(free_ports=True))
    assert set(SERVICES) == set(specs)


def test_settings_from_env(tmp_path: Path) -> None:
    s = UpSettings.from_env(
        {
            "TRIPMESH_DATA_DIR": str(tmp_path),
            "GATEWAY_PORT": "9090",
            "NATS_URL": "nats://nats:4222",
            "TRIPMESH_AGENT_RUNNERS": "3",
        }
    )
    assert s.data_dir == tmp_path and s.ports["gateway"] == 9090 and s.ports["planner"] == 8081
    assert s.nats_url == "nats://nats:4222" and s.database_url is None and s.agent_runners == 3
    assert UpSettings.from_env({}).data_dir == Path.cwd() / ".tripmesh"


def test_banner_lists_the_urls(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        default_services(),
        nats_port=4222,
        nats_monitor_port=8222,
        postgres_port=55432,
        qdrant_url="http://qdrant:6333",
    )
    text = banner(stack)
    for url in (
        "http://127.0.0.1:8080/api/v1",
        "http://127.0.0.1:8080/docs",
        "http://127.0.0.1:8080/asyncapi",
        "nats://admin:***@127.0.0.1:4222",  # the operator's identity, never its password
        "http://127.0.0.1:8222",
        "postgresql://postgres:***@127.0.0.1:55432/tripmesh",
        "http://qdrant:6333",
    ):
        assert url in text
    assert stack.postgres and stack.postgres.superuser_password
    assert stack.postgres.superuser_password not in text
    assert "users.json" in text  # where the identities' passwords are
    assert redact("postgresql://app:secret@db:5432/x") == "postgresql://app:***@db:5432/x"


class Lines:
    """A child's stdout, line by line, with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.queue.put(line) for line in stream], daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no {pattern!r} in output:\n{''.join(seen)}")


def _up(data: Path, ports: list[int]) -> tuple[subprocess.Popen[str], Lines]:
    env = {
        **os.environ,
        "TRIPMESH_DATA_DIR": str(data),
        "TRIPMESH_NATS_PORT": str(ports[0]),
        "TRIPMESH_NATS_MONITOR_PORT": str(ports[1]),
        "TRIPMESH_POSTGRES_PORT": str(ports[2]),
    }
    for name in ("NATS_URL", "DATABASE_URL", "QDRANT_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripmesh_devstack", "--infra-only"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = Lines(proc)
    lines.wait_for("tripmesh is up")
    return proc, lines


def _server_pids(data: Path) -> list[int]:
    nats = int((data / "nats" / "nats.pid").read_text().split()[0])
    postmaster = int((data / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
    return [nats, postmaster]


@pytest.mark.integration
def test_make_up_ctrl_c_sigkill_and_again(tmp_path: Path, still_alive: Callable[..., list[int]]) -> None:
    data, ports = tmp_path / "data", free_ports(3)

    proc, lines = _up(data, ports)
    pids = _server_pids(data)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(60) == 0
    lines.wait_for("stopped")
    assert still_alive(pids, timeout=5) == []

    proc, lines = _up(data, ports)  # same data, same ports
    pids = _server_pids(data)
    proc.kill()  # SIGKILL the supervisor: the servers must not outlive it
    proc.wait()
    assert still_alive(pids, timeout=30) == []

    proc, lines = _up(data, ports)  # stale pid files, lock and postmaster.pid: starts anyway
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


@pytest.mark.integration
def test_no_orphans_after_supervisor_sigkill(tmp_path: Path, still_alive: Callable[..., list[int]]) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "run_stack.py"), str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(proc)
    pids = json.loads(lines.wait_for(r'^\{"nats"'))
    log = (tmp_path / "data" / "logs" / "dummy.log").read_text()
    grandchild = int(re.findall(r"grandchild pid=(\d+)", log)[0])
    backends = [c.pid for c in psutil.Process(pids["postgres"]).children()]
    assert backends  # checkpointer, walwriter, ...
    proc.kill()
    proc.wait()
    left = still_alive([*pids.values(), *backends], timeout=30)
    assert left == [], [psutil.Process(p).cmdline() for p in left]
    # The parent-death signal reaches the service itself, not its process group: a service's
    # own children are its business (the dummy stops its grandchild on SIGTERM, as it should).
    assert still_alive([grandchild], timeout=5) == []
    # It could log its drain with its supervisor gone: it writes to the file, not to a pipe.
    assert "dummy: SIGTERM, draining" in (tmp_path / "data" / "logs" / "dummy.log").read_text()
