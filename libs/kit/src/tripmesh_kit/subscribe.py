"""FastStream subscribers built from a ConsumerSpec, with ack semantics declared up front."""

from __future__ import annotations

import builtins
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.subscriber.usecases import stream_pull_subscriber as _pull_usecases
from tripmesh_contracts.streams import ConsumerSpec

from tripmesh_kit.bus import consumer_config
from tripmesh_kit.pull import fetch_for_free_workers

# nats-py (2.15, 2.16) raises the *builtin* `asyncio.TimeoutError` from `fetch()` when a
# pull's remaining deadline runs out, not its own `nats.errors.TimeoutError` subclass, which
# is all FastStream 0.7.8's pull loops catch. The escaping error kills the fetch task: the
# batch loop drops the messages it had already gathered (they come back only after AckWait,
# 30 s later) and an idle consumer logs a traceback per timeout. Both loops look the name up
# in their module globals, so rebinding it to the builtin base class catches both errors.
# Regression test: libs/kit/tests/test_batch_fetch.py.
_pull_usecases.TimeoutError = builtins.TimeoutError  # type: ignore[attr-defined,assignment]


async def keep_raw_body(msg: StreamMessage[Any]) -> Any:
    """FastStream's default decoder JSON-parses a body labelled `content-type:
    application/json` *before* the handler runs; an invalid body then fails every delivery
    and vanishes at max_deliver without reaching the DLQ. Handlers decode (and dead-letter)
    themselves through `handle_message`, so the body stays raw bytes."""
    return msg.body


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
    FastStream's default terminate-on-exception. With `max_workers > 1` a message is fetched
    only for a free worker (`tripmesh_kit.pull`), so a drain abandons nothing fetched ahead.
    """
    kwargs.setdefault("decoder", keep_raw_body)
    subscriber = broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=consumer_config(spec),
        pull_sub=PullSub(batch_size=batch_size, timeout=fetch_timeout, batch=batch),
        ack_policy=AckPolicy.MANUAL,
        max_workers=max_workers,
        **kwargs,
    )
    return fetch_for_free_workers(subscriber)
