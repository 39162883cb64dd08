"""GET /api/v1/events: the caller's account events (users.evt.<user>.>, cost alerts) from
PLAN_EVENTS as SSE - replayed for late clients, live ones after, Last-Event-ID resume, and
nobody else's events (nor the caller's plan events, which have their own per-plan stream)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from nats.js import JetStreamContext
from tripmesh_contracts import EventKind, subjects
from tripmesh_contracts.messages import CostAlert

from .conftest import Users
from .test_events_sse import emit, parse_sse
from .test_plans_read import create

pytestmark = pytest.mark.integration


async def alert(js: JetStreamContext, user_id: str, threshold: int) -> int:
    message = CostAlert(
        user_id=user_id,
        scope="daily",
        period="2027-03-01",
        threshold_percent=threshold,
        spent_usd=Decimal("0.8"),
        cap_usd=Decimal("1"),
    )
    ack = await js.publish(
        subjects.cost_alert(user_id), message.to_bytes(), headers={"Nats-Msg-Id": message.id}
    )
    return int(ack.seq)


class EventReader:
    """Events of an open (never ending) stream, read as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_text()
        self.buffer = ""
        self.taken = 0

    async def next(self, count: int = 1) -> list[dict[str, str]]:
        while True:
            text = self.buffer.replace("\r\n", "\n")
            events = parse_sse(text[: text.rfind("\n\n") + 1])  # complete events only
            if len(events) >= self.taken + count:
                self.taken += count
                return events[self.taken - count : self.taken]
            self.buffer += await anext(self.chunks)


async def test_cost_alerts_are_replayed_then_live_and_resumable(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    someone, _ = await users.new()
    plan_id = await create(client, auth)
    first = await alert(js, user["id"], 50)
    await alert(js, someone["id"], 50)  # another user's
    await emit(js, user["id"], plan_id, EventKind.ACCEPTED)  # a plan event: not on this stream

    async with client.stream("GET", "/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        replayed = await reader.next()
        live = await alert(js, user["id"], 80)
        both = replayed + await reader.next()

    assert [(int(e["id"]), e["event"]) for e in both] == [(first, "cost_alert"), (live, "cost_alert")]
    payload = json.loads(both[1]["data"])
    assert (payload["type"], payload["user_id"], payload["threshold_percent"]) == (
        "cost.alert.v1",
        user["id"],
        80,
    )
    assert Decimal(payload["cap_usd"]) == 1

    async with client.stream("GET", "/events", headers={**auth, "Last-Event-ID": str(first)}) as resumed:
        after_first = await EventReader(resumed).next()
    assert int(after_first[0]["id"]) == live

    async with client.stream("GET", f"/events?last_event_id={live}", headers=auth) as nothing_yet:
        newer = await alert(js, user["id"], 100)
        assert int((await EventReader(nothing_yet).next())[0]["id"]) == newer


async def test_user_events_need_a_token_and_a_valid_last_event_id(
    client: httpx.AsyncClient, users: Users
) -> None:
    _, auth = await users.new()
    anonymous = await client.get("/events")
    bad_resume = await client.get("/events", headers={**auth, "Last-Event-ID": "latest"})
    assert anonymous.status_code == 401
    assert bad_resume.status_code == 422
    assert bad_resume.json()["errors"][0]["field"] == "Last-Event-ID"
