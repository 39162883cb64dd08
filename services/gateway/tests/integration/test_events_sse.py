"""SSE progress: the test plays the planner, publishing PlanEvents to PLAN_EVENTS, and reads
them back over HTTP - replay for late clients, Last-Event-ID resume, end after the terminal
event, and the ephemeral consumer removed when a client goes away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from tripmesh_contracts import EventKind, PlanEvent, PlanStatus, streams, subjects

from .conftest import Users
from .test_plans_read import create

pytestmark = pytest.mark.integration


async def emit(js: JetStreamContext, user_id: str, plan_id: str, kind: EventKind, **fields: Any) -> int:
    status = fields.pop(
        "status", PlanStatus.COMPLETED if kind is EventKind.COMPLETED else PlanStatus.PROCESSING
    )
    event = PlanEvent(user_id=user_id, plan_id=plan_id, kind=kind, status=status, **fields)
    ack = await js.publish(
        subjects.plan_event(user_id, plan_id, kind), event.to_bytes(), headers={"Nats-Msg-Id": event.id}
    )
    return int(ack.seq)


def parse_sse(text: str) -> list[dict[str, str]]:
    """Events (not comments) of an SSE body, as {id, event, data} dicts."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if "data" in fields:
            events.append(fields)
    return events


async def test_late_client_gets_the_whole_history_and_the_stream_ends(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    own_other_plan = await create(client, auth)
    someone, someone_auth = await users.new()
    someones_plan = await create(client, someone_auth)
    await emit(js, user["id"], plan_id, EventKind.ACCEPTED)
    await emit(js, user["id"], own_other_plan, EventKind.ACCEPTED)  # same user, another plan
    await emit(js, someone["id"], someones_plan, EventKind.ACCEPTED)  # another user
    await emit(js, user["id"], plan_id, EventKind.STAGE_STARTED, stage="research", completion_percentage=10)
    last = await emit(js, user["id"], plan_id, EventKind.COMPLETED, completion_percentage=100)

    response = await client.get(f"/plans/{plan_id}/events", headers=auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e["event"] for e in events] == ["accepted", "stage_started", "completed"]
    assert int(events[-1]["id"]) == last
    payload = json.loads(events[1]["data"])
    assert (payload["plan_id"], payload["stage"], payload["completion_percentage"]) == (
        plan_id,
        "research",
        10,
    )
    assert all(json.loads(e["data"])["plan_id"] == plan_id for e in events)


async def test_live_events_arrive_and_last_event_id_resumes(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    first = await emit(js, user["id"], plan_id, EventKind.ACCEPTED)
    second = await emit(js, user["id"], plan_id, EventKind.AGENT_STARTED, agent="weather")

    # Resume after the first event: the second is replayed, then live ones follow.
    seen: list[dict[str, str]] = []
    async with client.stream(
        "GET", f"/plans/{plan_id}/events", headers={**auth, "Last-Event-ID": str(first)}
    ) as response:
        assert response.status_code == 200
        buffer = ""
        published_live = False
        async for chunk in response.aiter_text():
            buffer += chunk
            seen = parse_sse(buffer)
            if seen and not published_live:
                published_live = True
                await emit(js, user["id"], plan_id, EventKind.AGENT_COMPLETED, agent="weather")
                await emit(js, user["id"], plan_id, EventKind.FAILED, status=PlanStatus.FAILED)
    assert [(e["event"]) for e in seen] == ["agent_started", "agent_completed", "failed"]
    assert int(seen[0]["id"]) == second

    # The same resume through the query parameter (for clients that cannot set headers)
    resumed = await client.get(f"/plans/{plan_id}/events?last_event_id={second}", headers=auth)
    assert [e["event"] for e in parse_sse(resumed.text)] == ["agent_completed", "failed"]

    # Reconnecting after the final event: nothing more will come -> 204 (EventSource stops)
    done = await client.get(f"/plans/{plan_id}/events", headers={**auth, "Last-Event-ID": seen[-1]["id"]})
    assert done.status_code == 204


async def test_a_revision_after_completion_keeps_the_replay_going(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    await emit(js, user["id"], plan_id, EventKind.COMPLETED)
    await emit(js, user["id"], plan_id, EventKind.ACCEPTED, version=2)
    await emit(js, user["id"], plan_id, EventKind.COMPLETED, version=2)

    events = parse_sse((await client.get(f"/plans/{plan_id}/events", headers=auth)).text)

    assert [(e["event"], json.loads(e["data"])["version"]) for e in events] == [
        ("completed", 1),
        ("accepted", 2),
        ("completed", 2),
    ]


async def test_keep_alives_while_idle_and_consumer_removed_on_disconnect(
    client: httpx.AsyncClient, users: Users, js: JetStreamContext
) -> None:
    user, auth = await users.new()
    plan_id = await create(client, auth)
    plan_filter = subjects.plan_events_filter(user["id"], plan_id)

    async def consumers_of_this_plan() -> int:
        infos = await js.consumers_info(streams.PLAN_EVENTS.name)
        return sum(1 for info in infos if info.config.filter_subject == plan_filter)

    during = None
    async with client.stream("GET", f"/plans/{plan_id}/events", headers=auth) as response:
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            if buffer.count(": keep-alive") >= 2:
                # Counted inside the loop: once it is left, the abandoned iterator may close
                # the connection at any moment.
                during = await consumers_of_this_plan()
                break
    assert during == 1

    # Liveness bound, not a speed target: the consumer must go once the client is gone.
    async def consumer_gone() -> None:
        while True:
            if await consumers_of_this_plan() == 0:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(consumer_gone(), timeout=20)


async def test_bad_last_event_id_is_422(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    plan_id = await create(client, auth)
    response = await client.get(f"/plans/{plan_id}/events", headers={**auth, "Last-Event-ID": "abc"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Last-Event-ID"


async def test_events_need_a_token(client: httpx.AsyncClient, users: Users) -> None:
    _, auth = await users.new()
    plan_id = await create(client, auth)
    response = await client.get(f"/plans/{plan_id}/events")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
