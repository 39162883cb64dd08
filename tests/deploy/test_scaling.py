"""The runner pools' autoscaling, simulated for real: a real nats-server with JetStream and
its monitoring port, the real streams and durables (tripmesh_kit.bus.provision), a burst of
agent jobs, and the lag read the way KEDA's `nats-jetstream` scaler reads it; the replica
count then follows the HPA formula with the threshold and bounds of the *rendered*
ScaledObjects (overlays/oracle-a1), never copied constants.

KEDA's scaler (pkg/scalers/nats_jetstream_scaler.go, v2.20.2, read from the source):
  GET http://<natsServerMonitoringEndpoint>/jsz?acc=<account>&config=true&consumers=true
  -> account_details[] whose id or name is the account -> stream_detail[] named `stream`
  -> consumer_detail[] named `consumer`; lag = num_pending + num_ack_pending.
The metric is an AverageValue target of lagThreshold, so the HPA wants
ceil(lag / lagThreshold) replicas per trigger, the largest over the ScaledObject's triggers,
bounded by min/maxReplicaCount. (The HPA's 10 % tolerance only damps changes near the
current count; it never changes where a burst or a drain ends up.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import nats
import pytest
from tripmesh_contracts import subjects
from tripmesh_devstack.nats import NatsServer
from tripmesh_kit.bus import provision
from tripmesh_tripctl.bus import desired_replicas

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


def keda_lag(monitor_url: str, trigger: Obj) -> int:
    """One trigger's lag exactly as the scaler computes it (see the module docstring)."""
    meta = trigger["metadata"]
    query = urlencode({"acc": meta["account"], "config": "true", "consumers": "true"})
    body = httpx.get(f"{monitor_url}/jsz?{query}", timeout=10).json()
    for account in body.get("account_details") or []:
        if meta["account"] in (account.get("id"), account.get("name")):
            for stream in account.get("stream_detail") or []:
                if stream["name"] == meta["stream"]:
                    for consumer in stream.get("consumer_detail") or []:
                        if consumer["name"] == meta["consumer"]:
                            return int(consumer["num_pending"]) + int(consumer["num_ack_pending"])
    raise LookupError(f"consumer {meta['consumer']!r} not in /jsz: KEDA would report an error")


def wanted(monitor_url: str, scaled_object: Obj) -> int:
    spec = scaled_object["spec"]
    lags = [(keda_lag(monitor_url, t), int(t["metadata"]["lagThreshold"])) for t in spec["triggers"]]
    return hpa_replicas(lags, spec["minReplicaCount"], spec["maxReplicaCount"])


def hpa_replicas(lags: list[tuple[int, int]], low: int, high: int) -> int:
    """The HPA on External AverageValue metrics: ceil(value / target) per metric, the largest
    of them, clamped to the bounds. Written out here, independently of tripctl's copy."""
    want = max((math.ceil(lag / threshold) for lag, threshold in lags), default=0)
    return min(max(want, low), high)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Liveness bound only: /jsz reflects acks within milliseconds on an idle server."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def scaled_objects(render_k3s: Callable[[str], list[Obj]]) -> dict[str, Obj]:
    objects = render_k3s("overlays/oracle-a1")
    return {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "ScaledObject"}


def test_hpa_formula() -> None:
    assert hpa_replicas([(0, 16)], 1, 4) == 1
    assert hpa_replicas([(17, 16), (3, 16)], 1, 4) == 2
    assert hpa_replicas([(1000, 16)], 1, 4) == 4
    for lags in ([(0, 16)], [(17, 16), (40, 16)], [(1000, 16)]):
        assert desired_replicas(lags, 1, 4) == hpa_replicas(lags, 1, 4)


async def test_a_burst_scales_the_pool_to_max_and_a_drain_back_to_min(
    own_nats_server: Callable[..., NatsServer], scaled_objects: dict[str, Obj]
) -> None:
    server = own_nats_server()
    pool, other = scaled_objects["agent-runner-transport"], scaled_objects["agent-runner-general"]
    low, high = pool["spec"]["minReplicaCount"], pool["spec"]["maxReplicaCount"]
    first = pool["spec"]["triggers"][0]["metadata"]
    threshold = int(first["lagThreshold"])
    agent = first["consumer"].removeprefix("runner-")
    assert low < high

    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await provision(js)
        assert await asyncio.to_thread(wanted, server.monitor_url, pool) == low

        # one job over a single replica's share: the pool wants a second replica
        for i in range(threshold + 1):
            await js.publish(subjects.agent_job(agent), b"{}", headers={"Nats-Msg-Id": f"warm-{i}"})
        assert await asyncio.to_thread(wanted, server.monitor_url, pool) == min(max(2, low), high)

        # the burst: more than the maximum's worth of lag
        burst = high * threshold * 2
        for i in range(burst):
            await js.publish(subjects.agent_job(agent), b"{}", headers={"Nats-Msg-Id": f"burst-{i}"})
        total = burst + threshold + 1
        assert await asyncio.to_thread(keda_lag, server.monitor_url, pool["spec"]["triggers"][0]) == total
        assert await asyncio.to_thread(wanted, server.monitor_url, pool) == high
        # the other pool's consumers saw nothing: it stays at its minimum
        assert await asyncio.to_thread(wanted, server.monitor_url, other) == other["spec"]["minReplicaCount"]

        # runners take the jobs: in flight (ack pending) still counts as lag, so the pool
        # keeps its replicas while they work; they take at most max_ack_pending at a time
        sub = await js.pull_subscribe(
            subjects.agent_job(agent), durable=first["consumer"], stream=first["stream"]
        )
        in_flight = await sub.fetch(threshold * high, timeout=10)
        assert await asyncio.to_thread(wanted, server.monitor_url, pool) == high
        acked = 0
        while acked < total:
            for msg in in_flight:
                await msg.ack_sync()
            acked += len(in_flight)
            if acked < total:
                in_flight = await sub.fetch(min(threshold * high, total - acked), timeout=10)
        await asyncio.to_thread(
            wait_for,
            lambda: keda_lag(server.monitor_url, pool["spec"]["triggers"][0]) == 0,
            "the consumer's lag drains once every job is acked",
        )
        assert await asyncio.to_thread(wanted, server.monitor_url, pool) == low
    finally:
        await nc.close()
