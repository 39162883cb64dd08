"""FastStream subscribers built from a ConsumerSpec, with ack semantics declared up front."""

from __future__ import annotations

from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from tripmesh_contracts.streams import ConsumerSpec

from tripmesh_kit.bus import consumer_config


def durable_subscriber(
    broker: NatsBroker,
    spec: ConsumerSpec,
    *,
    max_workers: int = 1,
    batch: bool = False,
    batch_size: int = 1,
    fetch_timeout: float = 1.0,
    **kwargs: Any,
) -> Any:
    """A pull subscriber on the shared durable `spec.durable` (all replicas share it).

    `AckPolicy.MANUAL`: handlers ack/nak/dead-letter through `handle_message`, never
    FastStream's default terminate-on-exception.
    """
    return broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=consumer_config(spec),
        pull_sub=PullSub(batch_size=batch_size, timeout=fetch_timeout, batch=batch),
        ack_policy=AckPolicy.MANUAL,
        max_workers=max_workers,
        **kwargs,
    )
