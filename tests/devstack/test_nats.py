"""Embedded NATS: JetStream on, fsync always, the store survives SIGKILL, stale state is safe."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import nats
import pytest
from tripmesh_devstack import NatsServer
from tripmesh_devstack.nats import NatsStartError
from tripmesh_devstack.ports import port_answers, wait_port_closed

pytestmark = pytest.mark.integration


async def publish(url: str, subject: str, data: bytes) -> int:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
        ack = await js.publish(subject, data)
        return int(ack.seq)
    finally:
        await nc.close()


async def read(url: str, seq: int) -> bytes:
    nc = await nats.connect(url)
    try:
        msg = await nc.jetstream().get_msg("DEVSTACK", seq)
        return bytes(msg.data or b"")
    finally:
        await nc.close()


async def test_jetstream_message_survives_sigkill(own_nats_server: Callable[..., NatsServer]) -> None:
    server = own_nats_server()
    async with httpx.AsyncClient() as http:
        config = (await http.get(f"{server.monitor_url}/jsz")).json()["config"]
    assert config["sync_always"] is True  # ARCHITECTURE §8: sync_interval always

    seq = await publish(server.url, "devstack.one", b"kept")
    server.kill()
    assert not port_answers(server.port)
    server.start()  # same store, same ports
    assert await read(server.url, seq) == b"kept"


async def test_restart_and_second_start_on_the_same_store(tmp_path: Path) -> None:
    first = NatsServer(tmp_path / "nats")
    first.start()
    seq = await publish(first.url, "devstack.two", b"again")
    first.restart()
    assert await read(first.url, seq) == b"again"
    first_pid = first.pid

    # A new supervisor on the same directory (the old one lost track of its server):
    # the leftover is stopped, a fresh server serves the same store.
    second = NatsServer(tmp_path / "nats", port=first.port, monitor_port=first.monitor_port)
    second.start()
    try:
        assert second.pid != first_pid
        assert first._proc is not None and first._proc.wait(10) is not None
        assert await read(second.url, seq) == b"again"
    finally:
        second.stop()


async def test_lame_duck_stops_accepting_clients(own_nats_server: Callable[..., NatsServer]) -> None:
    server = own_nats_server()
    nc = await nats.connect(server.url, allow_reconnect=False)
    server.lame_duck()
    assert wait_port_closed(server.port, timeout=10)  # new clients go elsewhere
    await nc.close()
    assert server.stop() is not None


def test_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = NatsServer(tmp_path, port=busy.getsockname()[1])
        with pytest.raises(NatsStartError, match="in use"):
            server.start()
