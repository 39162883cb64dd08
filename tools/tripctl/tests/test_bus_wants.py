"""`tripctl bus status`'s "Wants": the replicas KEDA's nats-jetstream arithmetic asks for per
agent-runner consumer (pure logic; tests/deploy/test_scaling.py runs the same numbers
against a real server)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from nats.js import api
from rich.console import Console
from tripmesh_contracts.streams import LEDGER_USAGE, runner_consumer
from tripmesh_tripctl import bus
from tripmesh_tripctl.settings import Settings

SCALED_OBJECTS = Path(__file__).resolve().parents[3] / "deploy/k3s/components/keda/scaledobjects.yaml"


def info(stream: str, name: str, pending: int, ack_pending: int) -> api.ConsumerInfo:
    consumer: api.ConsumerInfo = api.ConsumerInfo.from_response(
        {
            "stream_name": stream,
            "name": name,
            "config": {"durable_name": name},
            "num_pending": pending,
            "num_ack_pending": ack_pending,
            "num_redelivered": 0,
            "num_waiting": 0,
            "created": "2026-01-01T00:00:00Z",
        }
    )
    return consumer


def test_desired_replicas_is_the_hpa_formula() -> None:
    assert bus.desired_replicas([]) == 0
    assert bus.desired_replicas([(0, 16)]) == 0
    assert bus.desired_replicas([(1, 16)]) == 1
    assert bus.desired_replicas([(16, 16)]) == 1
    assert bus.desired_replicas([(17, 16)]) == 2
    # several consumers in one pool: the largest wins, not the sum
    assert bus.desired_replicas([(40, 16), (40, 16)]) == 3
    assert bus.desired_replicas([(1000, 16)], low=1, high=4) == 4
    assert bus.desired_replicas([(0, 16)], low=1, high=4) == 1


def test_runner_consumers_show_what_they_want() -> None:
    runner = runner_consumer("transport")
    row = bus.consumer_row(info(runner.stream, runner.durable, pending=30, ack_pending=8), 16)
    assert row["wants"] == 3  # in flight counts, as KEDA counts it
    other = bus.consumer_row(info(LEDGER_USAGE.stream, LEDGER_USAGE.durable, 500, 0), 16)
    assert other["wants"] is None
    out = Console(record=True, width=200, file=io.StringIO())
    bus.render({"streams": [], "consumers": [row, other]}, out)
    text = out.export_text()
    assert "Wants" in text and "runner-transport" in text


def test_default_threshold_is_the_scaled_objects(monkeypatch: Any) -> None:
    monkeypatch.delenv("TRIPCTL_LAG_THRESHOLD", raising=False)
    thresholds = {
        int(trigger["metadata"]["lagThreshold"])
        for doc in yaml.safe_load_all(SCALED_OBJECTS.read_text())
        for trigger in doc["spec"]["triggers"]
    }
    assert thresholds == {Settings().lag_threshold}
    monkeypatch.setenv("TRIPCTL_LAG_THRESHOLD", "4")
    assert Settings().lag_threshold == 4
