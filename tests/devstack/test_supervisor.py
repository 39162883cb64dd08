"""The Stack supervisor with a dummy service: env, readiness, tagged logs, crash/kill/restart,
drain then SIGKILL, loud failures, the data-dir lock, and no orphans."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tripmesh_devstack import ServiceSpec, Stack, StackError

# External URLs: the stack starts no server, so these tests need no NATS / Postgres.
NO_INFRA = {"nats_url": "nats://127.0.0.1:1", "database_url": "postgresql://postgres@127.0.0.1:1/x"}
Spec = Callable[..., ServiceSpec]


def test_start_env_tags_logs_and_clean_stop(
    tmp_path: Path, dummy_spec: Spec, still_alive: Callable[..., list[int]]
) -> None:
    out = io.StringIO()
    beta = dummy_spec(
        "beta",
        replicas=2,
        replica_env=[{"AGENT_RUNNER_AGENTS": "transport,accommodation"}, {"AGENT_RUNNER_AGENTS": "location"}],
    )
    stack = Stack(
        tmp_path / "data",
        [dummy_spec("alpha", env={"DUMMY_CHILD": "1"}), beta],
        console=out,
        color=False,
        env={"EXTRA": "yes"},
        **NO_INFRA,
    )
    stack.start()
    try:
        env = httpx.get(stack.url("alpha") + "/env").json()
        data = tmp_path / "data"
        assert env["NATS_URL"] == NO_INFRA["nats_url"] and env["DATABASE_URL"] == NO_INFRA["database_url"]
        assert env["TRIPMESH_DATA_DIR"] == str(data) and env["LOG_FORMAT"] == "console"
        assert env["VECTOR_SYNC_QDRANT_PATH"] == str(data / "qdrant") and "QDRANT_URL" not in env
        assert env["DUMMY_HTTP_PORT"] == str(stack.replica("alpha").port) and env["EXTRA"] == "yes"
        agents = [httpx.get(stack.url("beta", i) + "/env").json()["AGENT_RUNNER_AGENTS"] for i in (0, 1)]
        assert agents == ["transport,accommodation", "location"]
        assert stack.url("beta", 0) != stack.url("beta", 1)
        pids = [p for p in (stack.pid("alpha"), stack.pid("beta", 0), stack.pid("beta", 1)) if p]
        assert len(pids) == 3
        grandchild = int(re.findall(r"grandchild pid=(\d+)", (data / "logs" / "alpha.log").read_text())[0])
    finally:
        stack.stop()
    assert still_alive([*pids, grandchild], timeout=5) == []  # the whole process group went

    lines = out.getvalue().splitlines()
    assert any(line.startswith("[alpha]") and "dummy: listening" in line for line in lines)
    assert any(line.startswith("[alpha]") and "dummy: to stderr" in line for line in lines)
    assert any(line.startswith("[beta#1]") and "dummy: listening" in line for line in lines)
    assert "\x1b[" not in out.getvalue()  # no colour when not a TTY
    alpha_log = (tmp_path / "data" / "logs" / "alpha.log").read_text()
    assert "dummy: SIGTERM, draining" in alpha_log and "dummy: stopped" in alpha_log
    assert (tmp_path / "data" / "logs" / "beta-1.log").exists()


def test_crash_kill_restart_and_scale(tmp_path: Path, dummy_spec: Spec) -> None:
    with Stack(tmp_path, [dummy_spec("svc")], **NO_INFRA) as stack:
        first = stack.pid("svc")
        assert first is not None
        os.kill(first, signal.SIGKILL)  # a crash, not asked by the stack
        deadline = time.monotonic() + 10
        while not stack.crashed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.tag for r in stack.crashed()] == ["svc"]
        stack.start_replica("svc")
        assert stack.pid("svc") not in (None, first) and not stack.crashed()

        stack.kill("svc")  # asked for: not a crash
        assert stack.pid("svc") is None and not stack.crashed()
        stack.restart("svc")
        assert httpx.get(stack.url("svc") + "/readyz").status_code == 200
        stack.restart("svc", kill=True)
        assert httpx.get(stack.url("svc") + "/readyz").status_code == 200

        index = stack.add_replica("svc", env={"AGENT_RUNNER_AGENTS": "budget"})
        assert index == 1
        env = httpx.get(stack.url("svc", 1) + "/env").json()
        assert env["AGENT_RUNNER_AGENTS"] == "budget"
        assert stack.terminate("svc", 1) == 0  # drained and exited cleanly


def test_drain_timeout_then_sigkill(tmp_path: Path, dummy_spec: Spec, alive: Callable[[int], bool]) -> None:
    out = io.StringIO()
    stack = Stack(
        tmp_path,
        [dummy_spec("stubborn", env={"DUMMY_IGNORE_TERM": "1"})],
        console=out,
        drain_timeout=1.0,
        **NO_INFRA,
    )
    stack.start()
    pid = stack.pid("stubborn")
    assert pid is not None
    started = time.monotonic()
    stack.stop()
    assert 0.9 < time.monotonic() - started < 10
    assert not alive(pid)
    assert "stubborn did not stop in time: SIGKILL" in out.getvalue()


def test_a_service_that_dies_fails_loudly(tmp_path: Path, dummy_spec: Spec) -> None:
    stack = Stack(
        tmp_path, [dummy_spec("ok"), dummy_spec("broken", env={"DUMMY_EXIT_AT_START": "3"})], **NO_INFRA
    )
    with pytest.raises(StackError, match=r"broken exited with code 3") as failure:
        stack.start()
    assert "refusing to start" in str(failure.value)  # the tail of its log
    assert stack.pid("ok") is None  # everything else was stopped
    Stack(tmp_path, [], **NO_INFRA).start()  # and the data dir is free again


def test_a_service_never_ready_times_out(tmp_path: Path, dummy_spec: Spec) -> None:
    stack = Stack(
        tmp_path, [dummy_spec("slow", env={"DUMMY_READY_AFTER": "999"})], ready_timeout=2, **NO_INFRA
    )
    with pytest.raises(StackError, match=r"slow not ready after 2s \(last answer: HTTP 503\)"):
        stack.start()
    assert stack.pid("slow") is None


def test_one_stack_per_data_dir(tmp_path: Path, dummy_spec: Spec) -> None:
    with Stack(tmp_path, [dummy_spec("a")], **NO_INFRA) as first:
        with pytest.raises(StackError, match="another stack"):
            Stack(tmp_path, [dummy_spec("b")], **NO_INFRA).start()
        assert httpx.get(first.url("a") + "/readyz").status_code == 200


def test_a_taken_service_port_fails_before_launch(tmp_path: Path, dummy_spec: Spec) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = Stack(tmp_path, [dummy_spec("web", port=port)], **NO_INFRA)
        with pytest.raises(StackError, match=rf"web: port {port} \(DUMMY_HTTP_PORT\) is in use"):
            stack.start()
