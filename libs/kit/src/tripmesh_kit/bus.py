"""JetStream plumbing shared by the services: provisioning and reliable publishing.

Retry owner: the publisher. nats-py's `js.publish` does not retry, so `Bus.publish` retries
timeouts and "no responders" (stream leader moving, server restarting) with the *same*
`Nats-Msg-Id`; the stream's duplicate window drops any copy that did land.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import nats
import stamina
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import NoStreamResponseError, NotFoundError, ServiceUnavailableError
from tripmesh_contracts.envelope import Envelope
from tripmesh_contracts.streams import ALL_CONSUMERS, ALL_STREAMS, ConsumerSpec, StreamSpec

from tripmesh_kit import telemetry
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

MSG_ID = "Nats-Msg-Id"
RETRYABLE_PUBLISH_ERRORS = (
    NatsTimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
)


def stream_for(subject: str) -> StreamSpec:
    """The stream that captures `subject` (by prefix of its declared wildcard subjects)."""
    for spec in ALL_STREAMS:
        for pattern in spec.subjects:
            if pattern.endswith(".>") and subject.startswith(pattern[:-1]):
                return spec
    raise LookupError(f"no stream captures subject {subject!r}")


def stream_config(spec: StreamSpec) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy(spec.retention.value),
        storage=api.StorageType.FILE,
        max_age=spec.max_age_seconds or None,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        duplicate_window=spec.duplicate_window_seconds,
        num_replicas=spec.replicas,
    )


def consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description or None,
        filter_subject=spec.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        backoff=list(spec.backoff_seconds) or None,
        max_ack_pending=spec.max_ack_pending,
    )


async def provision(
    js: JetStreamContext,
    streams: Iterable[StreamSpec] = ALL_STREAMS,
    consumers: Iterable[ConsumerSpec] = ALL_CONSUMERS,
) -> None:
    """Create or update streams and durable consumers. Safe to run from every replica."""
    for spec in streams:
        config = stream_config(spec)
        try:
            await js.stream_info(spec.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
    for cspec in consumers:
        # add_consumer on an existing durable with the same config is a no-op; with a changed
        # config the server updates the editable fields.
        await js.add_consumer(cspec.stream, consumer_config(cspec))


async def connect(url: str, name: str) -> Client:
    """A raw nats-py client that reconnects forever (the broker may restart under us)."""
    return await nats.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
    )


def make_broker(url: str, name: str, **kwargs: Any) -> NatsBroker:
    """The service's broker; with tracing on (`configure_tracing` ran first) it carries
    FastStream's NATS telemetry middleware, so every publish and subscriber propagates W3C
    trace context in the message headers."""
    middlewares = (*telemetry.broker_middlewares(), *kwargs.pop("middlewares", ()))
    # Without a logger FastStream builds its own (colour text on stdout, INFO, not propagated):
    # a plain stdlib logger goes through configure_logging's root handler (JSON, WARNING).
    kwargs.setdefault("logger", logging.getLogger("tripmesh.faststream"))
    return NatsBroker(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        middlewares=middlewares,
        **kwargs,
    )


class Bus:
    """Publishing through the FastStream broker (so its middlewares see every publish)."""

    def __init__(self, broker: NatsBroker, publish_timeout: float = 5.0, attempts: int = 8):
        self.broker = broker
        self.publish_timeout = publish_timeout
        self.attempts = attempts

    @property
    def nc(self) -> Client:
        return self.broker.connection

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

    async def publish(
        self,
        msg: Envelope,
        subject: str,
        headers: dict[str, str] | None = None,
    ) -> api.PubAck:
        return await self.publish_raw(msg.to_bytes(), subject, msg_id=msg.id, headers=headers)

    async def publish_raw(
        self,
        payload: bytes,
        subject: str,
        *,
        msg_id: str,
        headers: dict[str, str] | None = None,
    ) -> api.PubAck:
        stream = stream_for(subject).name
        all_headers = {**(headers or {}), MSG_ID: msg_id}
        async for attempt in stamina.retry_context(
            on=RETRYABLE_PUBLISH_ERRORS, attempts=self.attempts, wait_initial=0.1, wait_max=2.0
        ):
            with attempt:
                ack: api.PubAck = await self.broker.publish(
                    payload,
                    subject,
                    headers=all_headers,
                    stream=stream,
                    timeout=self.publish_timeout,
                )
        # stream, seq and msg id of every ack: the reliability battery checks none was lost (issue #12)
        log.debug(
            "published",
            subject=subject,
            stream=ack.stream,
            seq=ack.seq,
            msg_id=msg_id,
            duplicate=bool(ack.duplicate),
        )
        return ack
