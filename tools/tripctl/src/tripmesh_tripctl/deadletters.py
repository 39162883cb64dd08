"""The DLQ stream as an operator sees it: read, replay, purge (no CLI here; see dlq.py).

`tripmesh_kit.consume.dead_letter` copies a failed message to `dlq.<original subject>` with
its body, its headers (less `Nats-Msg-Id`) and `Tripmesh-Dlq-*` headers: the error, its
kind (undecodable | permanent | max_deliver), the original stream, sequence and subject,
the delivery count and the consumer.

Replay publishes the body (or an operator's corrected body) with the original headers to the
original subject, waits for the stream's ack, then deletes the DLQ entry (`--keep` leaves it).
Every replay carries a *fresh* `Nats-Msg-Id`: the original id is still inside the source
stream's duplicate window when a message fails fast (2 minutes), so re-using it would make
JetStream drop the replay silently (a PubAck with duplicate=true and nothing delivered). The
id is kept across the publish's own retries, so one replay lands once; two replays land twice,
and that is safe because every handler is idempotent on the message's own id (the ledger
keys usage on `UsageEvent.id`, the planner on command/result ids, vector-sync on versions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tripmesh_contracts import new_id
from tripmesh_contracts.streams import DLQ
from tripmesh_kit.bus import MSG_ID, stream_for
from tripmesh_kit.consume import (
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_ERROR,
    DLQ_ERROR_KIND,
    DLQ_SEQ,
    DLQ_STREAM,
    DLQ_SUBJECT,
)

from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.natsconn import js_api

DLQ_PREFIX = "dlq."
REPLAYED_FROM = "Tripmesh-Replayed-From"
"""Added to a replayed message: which DLQ entry it came from (for the logs and for audits)."""


@dataclass
class DeadLetter:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    time: datetime | None = None

    @property
    def original_subject(self) -> str:
        return self.headers.get(DLQ_SUBJECT) or self.subject.removeprefix(DLQ_PREFIX)

    @property
    def error(self) -> str:
        return self.headers.get(DLQ_ERROR, "")

    @property
    def kind(self) -> str:
        return self.headers.get(DLQ_ERROR_KIND, "")

    @property
    def deliveries(self) -> int | None:
        value = self.headers.get(DLQ_DELIVERIES)
        return int(value) if value and value.isdigit() else None

    @property
    def original_headers(self) -> dict[str, str]:
        """What the message carried when it failed (trace context, content type, ...)."""
        return {
            k: v
            for k, v in self.headers.items()
            if not k.startswith("Tripmesh-Dlq-") and not k.startswith("Nats-") and k != REPLAYED_FROM
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "time": self.time,
            "original_subject": self.original_subject,
            "kind": self.kind,
            "error": self.error,
            "deliveries": self.deliveries,
            "consumer": self.headers.get(DLQ_CONSUMER),
            "original_stream": self.headers.get(DLQ_STREAM),
            "original_seq": int(s) if (s := self.headers.get(DLQ_SEQ, "")).isdigit() else None,
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "headers": self.original_headers, **body_view(self.data)}


def body_view(data: bytes) -> dict[str, Any]:
    """The body as JSON when it is JSON, else as text (a poison message may be neither)."""
    try:
        return {"body": json.loads(data)}
    except ValueError:
        return {"body_text": data.decode("utf-8", "replace")}


def dlq_filter(subject: str | None) -> str:
    """`usage.llm.>` or `dlq.usage.llm.>` -> `dlq.usage.llm.>`; None -> every dead letter."""
    if not subject:
        return f"{DLQ_PREFIX}>"
    return subject if subject.startswith(DLQ_PREFIX) else DLQ_PREFIX + subject


async def read(js: JetStreamContext, seq: int, subject: str, *, next_match: bool) -> DeadLetter | None:
    try:
        raw = await js.get_msg(DLQ.name, seq=seq, subject=subject if next_match else None, next=next_match)
    except NotFoundError:
        return None
    return DeadLetter(
        seq=int(raw.seq or seq),
        subject=raw.subject or "",
        data=raw.data or b"",
        headers={str(k): str(v) for k, v in (raw.headers or {}).items()},
        time=raw.time,
    )


async def list_dead_letters(
    js: JetStreamContext, subject: str | None = None, limit: int = 100
) -> list[DeadLetter]:
    """Oldest first, at most `limit`, walking the stream by `next_by_subj` (deleted entries
    leave gaps)."""
    pattern = dlq_filter(subject)
    found: list[DeadLetter] = []
    seq = 1
    while len(found) < limit:
        letter = await read(js, seq, pattern, next_match=True)
        if letter is None:
            break
        found.append(letter)
        seq = letter.seq + 1
    return found


async def get(js: JetStreamContext, seq: int) -> DeadLetter:
    letter = await read(js, seq, "", next_match=False)
    if letter is None:
        raise OperatorError(f"no dead letter {seq} in {DLQ.name}", hint="`tripctl dlq ls` lists them")
    return letter


@dataclass
class Replayed:
    id: int
    subject: str
    stream: str
    stream_seq: int
    msg_id: str
    duplicate: bool
    removed: bool
    corrected: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def replay_headers(letter: DeadLetter, msg_id: str) -> dict[str, str]:
    return {**letter.original_headers, REPLAYED_FROM: f"{DLQ.name}/{letter.seq}", MSG_ID: msg_id}


async def replay(
    js: JetStreamContext, letter: DeadLetter, *, body: bytes | None = None, keep: bool = False
) -> Replayed:
    subject = letter.original_subject
    try:
        stream = stream_for(subject).name
    except LookupError as exc:
        raise OperatorError(f"dead letter {letter.seq}: no stream captures {subject!r}") from exc
    msg_id = f"replay-{letter.seq}-{new_id()}"
    headers = replay_headers(letter, msg_id)
    payload = letter.data if body is None else body
    for attempt in range(5):
        try:
            ack = await js.publish(subject, payload, stream=stream, headers=headers)
            break
        except NatsTimeoutError:
            if attempt == 4:
                raise
    removed = False
    if not keep:
        # only after the ack: a crash in between leaves both copies, and a second replay is
        # harmless (idempotent handlers), whereas the other order could lose the message
        removed = bool(await js.delete_msg(DLQ.name, letter.seq))
    return Replayed(
        letter.seq, subject, ack.stream, ack.seq, msg_id, bool(ack.duplicate), removed, body is not None
    )


async def purge(nc: Client, subject: str | None, timeout: float) -> int:
    """Delete every dead letter (or those of one original subject pattern). The count."""
    request = {"filter": dlq_filter(subject)} if subject else {}
    reply = await js_api(nc, f"STREAM.PURGE.{DLQ.name}", request, timeout)
    return int(reply.get("purged", 0))
