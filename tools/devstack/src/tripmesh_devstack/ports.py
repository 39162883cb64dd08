"""Free TCP ports on 127.0.0.1 and small waits on sockets."""

from __future__ import annotations

import contextlib
import socket
import time

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the kernel picks it; a race is possible but rare)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct free ports: the sockets stay bound until all are picked, so no repeats."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when we could listen on the port (SO_REUSEADDR as servers use it, so TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(port: int, host: str = HOST, timeout: float = 10.0) -> bool:
    """Wait until nothing accepts connections on the port; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_answers(port, host, timeout=0.2):
            return True
        time.sleep(0.05)
    return False
