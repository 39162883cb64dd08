"""Fixtures for the devstack tests (fixtures, not imports: pytest runs with importlib mode)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from tripmesh_devstack import ServiceSpec

HERE = Path(__file__).parent


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _still_alive(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def dummy_spec() -> Callable[..., ServiceSpec]:
    """Factory: a ServiceSpec running tests/devstack/dummy_service.py."""

    def make(name: str = "dummy", **kwargs: Any) -> ServiceSpec:
        return ServiceSpec(
            name=name,
            module="dummy",
            port_env="DUMMY_HTTP_PORT",
            argv=[sys.executable, str(HERE / "dummy_service.py")],
            **kwargs,
        )

    return make


@pytest.fixture
def still_alive() -> Callable[..., list[int]]:
    """`still_alive(pids, timeout=15)`: the pids that have not exited after waiting."""
    return _still_alive


@pytest.fixture
def alive() -> Callable[[int], bool]:
    return _alive
