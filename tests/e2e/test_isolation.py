"""Issue #8, isolation proven over HTTP on the real stack (planner, ledger, vector-sync answer).

Every operation of the gateway's OpenAPI document (`/openapi.json`, i.e. `app.openapi()` of
the running gateway) that takes a path parameter is called with ana's token on bob's
resources and must answer 404. The list is derived from the document: a new route with a
path parameter the test does not know fails it until its resource is added to `BOBS` (or the
route to `ALLOWED_WITHOUT_RESOURCE_ID`, with the reason). Lists and searches return only the
caller's data; shares are read-only, cost-free and stop working when revoked or expired."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from client import TERMINAL, User, UserFactory

pytestmark = pytest.mark.e2e

API = "/api/v1"

ALLOWED_WITHOUT_RESOURCE_ID: dict[tuple[str, str], str] = {}
"""(METHOD, path) of routes whose path parameters name no resource of a user. None today."""

BODIES: dict[str, dict[str, Any]] = {
    "PlanUpdateBody": {"feedback": "more museums", "multitask_strategy": "enqueue"},
    "DecisionBody": {"approve": True},
    "CancelBody": {"reason": "isolation test"},
    "ShareCreateBody": {"type": "link"},
}
"""A valid body per request schema, so a 404 comes from ownership and not from validation."""

COST_KEYS = ("total_cost_usd", "cost_status")


async def bobs_api_key(user: User) -> str:
    r = await user.post(f"{API}/auth/api-keys", json={"name": "isolation test"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def bobs_session(user: User) -> str:
    r = await user.get(f"{API}/auth/sessions")
    assert r.status_code == 200, r.text
    return str(r.json()["items"][0]["id"])


ACCOUNT_RESOURCES: dict[str, Callable[[User], Awaitable[str]]] = {
    "key_id": bobs_api_key,
    "session_id": bobs_session,
}
"""Path parameters naming account resources (made for bob when a route needs one)."""


def body_for(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = content["schema"]
    refs = [schema.get("$ref", "")] + [s.get("$ref", "") for s in schema.get("anyOf", [])]
    for ref in refs:
        name = ref.rsplit("/", 1)[-1]
        if name in BODIES:
            return BODIES[name]
    return {}


def id_taking_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            if params and (method.upper(), path) not in ALLOWED_WITHOUT_RESOURCE_ID:
                found.append((method.upper(), path, operation))
    return found


async def status_of(
    http: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: Any
) -> tuple[int, str]:
    """Status and start of the body; streamed, so an SSE answer that wrongly opens never hangs."""
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with http.stream(method, url, timeout=15, **kwargs) as response:
        text = ""
        if response.status_code != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
            text = (await response.aread()).decode(errors="replace")[:200]
        return response.status_code, text


async def finished(user: User, plan_id: str) -> dict[str, Any]:
    plan: dict[str, Any] = await user.wait_for_plan(plan_id, lambda p: p["status"] in TERMINAL, timeout=180)
    return plan


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 90) -> None:
    """Poll until `check()` holds (vector-sync indexes asynchronously): a liveness bound."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.3)


async def test_every_id_taking_route_is_404_on_another_users_resources(
    http: httpx.AsyncClient, new_user: UserFactory
) -> None:
    ana, bob = await new_user("ana"), await new_user("bob")
    ana_plan = await ana.create_plan(title="Pastries in Lisbon")
    bob_plan = await bob.create_plan(title="Pastries in Lisbon")
    await finished(ana, ana_plan)
    await finished(bob, bob_plan)
    share = await bob.post(f"{API}/plans/{bob_plan}/share", json={"type": "link"})
    assert share.status_code == 201, share.text
    bob_token, bob_share = share.json()["token"], share.json()["id"]

    document = (await http.get("/openapi.json")).json()
    operations = id_taking_operations(document)
    assert len(operations) >= 15, [f"{m} {p}" for m, p, _ in operations]

    bobs = {"plan_id": bob_plan, "version": "1", "share_id": bob_share, "token": f"tms_{uuid.uuid4().hex}"}
    own = {"plan_id": bob_plan, "version": "1", "share_id": bob_share, "token": bob_token}
    failures = []
    for method, path, operation in operations:
        names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        for name in names - set(bobs):
            assert name in ACCOUNT_RESOURCES, f"{method} {path}: teach this test which resource {name} names"
            bobs[name] = own[name] = await ACCOUNT_RESOURCES[name](bob)
        body = body_for(operation)
        status, text = await status_of(http, method, path.format(**bobs), ana.auth, body)
        if status != 404:
            failures.append(f"{method} {path} as ana on bob's: {status} {text}")
        if method == "GET":  # the control: the same ids are real, their owner reads them
            status, text = await status_of(http, method, path.format(**own), bob.auth, body)
            if status != 200:
                failures.append(f"{method} {path} as bob on his own: {status} {text}")
    # a share id is only valid under its own plan, even for a plan the caller owns
    status, text = await status_of(
        http, "DELETE", f"{API}/plans/{ana_plan}/shares/{bob_share}", ana.auth, None
    )
    if status != 404:
        failures.append(f"DELETE ana's plan / bob's share: {status} {text}")
    # ids in queries: the plan of a cost summary is checked the same way
    r = await ana.get(f"{API}/costs/summary", params={"plan_id": bob_plan})
    if r.status_code != 404:
        failures.append(f"GET /costs/summary?plan_id=bob's: {r.status_code}")
    # another user's budget is an admin's business: 403 (who it is about is the caller's input)
    r = await ana.get(f"{API}/costs/budget", params={"user_id": bob.user_id})
    if r.status_code != 403:
        failures.append(f"GET /costs/budget?user_id=bob: {r.status_code}")
    assert not failures, "\n".join(failures)

    # nothing ana tried changed bob's plan or shares
    plan = await bob.plan(bob_plan)
    assert plan["status"] == "completed" and plan["version"] == 1, plan
    listed = await bob.get(f"{API}/plans/{bob_plan}/shares")
    assert [s["id"] for s in listed.json()["items"]] == [bob_share]


async def test_lists_and_searches_return_only_the_callers_data(new_user: UserFactory) -> None:
    ana, bob = await new_user("ana"), await new_user("bob")
    body = {"title": "Fjord hiking and seafood", "destinations": ["Bergen, NO"], "end_date": "2027-05-04"}
    ana_plan = await ana.create_plan(**body)
    bob_plans = [await bob.create_plan(**body), await bob.create_plan(**body)]
    await finished(ana, ana_plan)
    for plan_id in bob_plans:
        await finished(bob, plan_id)

    r = await ana.get(f"{API}/plans", params={"limit": 100})
    assert [p["id"] for p in r.json()["items"]] == [ana_plan] and r.json()["total"] == 1
    r = await ana.get(f"{API}/plans", params={"shared": "true"})
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["total"] == 0

    async def bob_indexed() -> bool:
        r = await bob.get(f"{API}/search/plans", params={"q": "fjord hiking", "limit": 50})
        return {h["plan_id"] for h in r.json()["hits"]} >= set(bob_plans)

    async def ana_indexed() -> bool:
        r = await ana.get(f"{API}/search/plans", params={"q": "fjord hiking", "limit": 50})
        assert r.status_code == 200, r.text
        return ana_plan in {h["plan_id"] for h in r.json()["hits"]}

    await eventually(bob_indexed, "bob's plans searchable")
    await eventually(ana_indexed, "ana's plan searchable")
    r = await ana.get(f"{API}/search/plans", params={"q": "fjord hiking seafood", "limit": 50})
    assert [h["plan_id"] for h in r.json()["hits"]] == [ana_plan]
    r = await ana.get(f"{API}/plans/{ana_plan}/similar", params={"limit": 50})
    assert r.status_code == 200 and r.json()["hits"] == [], r.text  # bob's twins never show up

    r = await ana.get(f"{API}/costs/summary")
    assert r.status_code == 200 and r.json()["user_id"] == ana.user_id
    r = await ana.get(f"{API}/costs/alerts")
    assert r.status_code == 200 and all(a["user_id"] == ana.user_id for a in r.json()["alerts"])


async def test_shares_are_read_only_cost_free_and_end_at_once(
    http: httpx.AsyncClient, new_user: UserFactory
) -> None:
    bob, carol, ana = await new_user("bob"), await new_user("carol"), await new_user("ana")
    plan_id = await bob.create_plan(title="Sharing a Porto weekend", destinations=["Porto"])
    other_plan = await bob.create_plan(title="Bob's private trip", destinations=["Madrid"])
    await finished(bob, plan_id)
    await finished(bob, other_plan)
    owner_view = await bob.plan(plan_id)
    assert owner_view["cost_status"] in ("ok", "unavailable") and "total_cost_usd" in owner_view

    r = await bob.post(
        f"{API}/plans/{plan_id}/share", json={"type": "user", "user": carol.email, "searchable": True}
    )
    assert r.status_code == 201, r.text
    carol_share = r.json()
    assert carol_share["shared_with"]["id"] == carol.user_id and carol_share["token"] is None

    # carol reads the plan and its versions, never costs
    r = await carol.get(f"{API}/plans/{plan_id}")
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["access"] == "shared" and seen["id"] == plan_id and seen["title"] == owner_view["title"]
    assert not any(key in seen for key in COST_KEYS)
    assert all("cost_usd" not in info for info in seen["agent_results"].values())
    versions = await carol.get(f"{API}/plans/{plan_id}/versions")
    assert versions.status_code == 200 and [v["version"] for v in versions.json()["items"]] == [1]
    assert "cost_usd" not in str(versions.json()) and "prompt_tokens" not in str(versions.json())
    r = await carol.get(f"{API}/plans/{plan_id}/versions/1")
    assert r.status_code == 200 and "cost_usd" not in r.text
    # ... but nothing else of bob's: his other plan, his costs, changing or re-sharing this one
    denied = [
        ("GET", f"/plans/{other_plan}", None),
        ("GET", f"/plans/{plan_id}/events", None),
        ("GET", f"/plans/{plan_id}/similar", None),
        ("GET", f"/plans/{plan_id}/shares", None),
        ("POST", f"/plans/{plan_id}/share", {"type": "link"}),
        ("DELETE", f"/plans/{plan_id}/shares/{carol_share['id']}", None),
        ("PUT", f"/plans/{plan_id}", {"feedback": "cheaper", "multitask_strategy": "enqueue"}),
        ("POST", f"/plans/{plan_id}/cancel", {}),
        ("POST", f"/plans/{plan_id}/decision", {"approve": True}),
        ("DELETE", f"/plans/{plan_id}", None),
    ]
    for method, path, body in denied:
        status, text = await status_of(http, method, API + path, carol.auth, body)
        assert status == 404, (method, path, status, text)
    r = await carol.get(f"{API}/costs/summary", params={"plan_id": plan_id})
    assert r.status_code == 404
    # listed only where asked: her own plans stay hers, shared ones come with ?shared=true
    r = await carol.get(f"{API}/plans")
    assert r.json()["items"] == []
    r = await carol.get(f"{API}/plans", params={"shared": "true"})
    assert [p["id"] for p in r.json()["items"]] == [plan_id]
    assert not any(key in r.json()["items"][0] for key in COST_KEYS)

    async def carol_finds_it() -> bool:
        r = await carol.get(f"{API}/search/plans", params={"q": "Porto weekend", "limit": 10})
        assert r.status_code == 200, r.text
        hits = {h["plan_id"] for h in r.json()["hits"]}
        assert other_plan not in hits
        return plan_id in hits

    await eventually(carol_finds_it, "carol's search finds the searchable share")
    # ana, whom nobody shared anything with, still gets 404
    assert (await ana.get(f"{API}/plans/{plan_id}")).status_code == 404

    # a link: anyone with the token reads this plan (no account), never costs, nothing else
    r = await bob.post(f"{API}/plans/{plan_id}/share", json={"type": "link"})
    link = r.json()
    assert r.status_code == 201 and link["token"] and link["url"] == f"{API}/shared/{link['token']}"
    r = await http.get(link["url"])
    assert r.status_code == 200 and r.json()["id"] == plan_id, r.text
    assert not any(key in r.json() for key in COST_KEYS)
    r = await http.get(link["url"] + "/versions")
    assert r.status_code == 200 and "cost_usd" not in r.text
    assert (await http.get(link["url"] + "/versions/1")).status_code == 200
    assert (
        await http.get(f"{API}/plans/{plan_id}", headers={"Authorization": f"Bearer {link['token']}"})
    ).status_code == 401
    listed = await bob.get(f"{API}/plans/{plan_id}/shares")
    assert {s["id"] for s in listed.json()["items"]} == {carol_share["id"], link["id"]}
    assert "token" not in str(listed.json())

    # revoked: gone on the next request
    assert (
        await bob.http.delete(f"{API}/plans/{plan_id}/shares/{carol_share['id']}", headers=bob.auth)
    ).status_code == 204
    assert (await carol.get(f"{API}/plans/{plan_id}")).status_code == 404
    assert (await carol.get(f"{API}/plans", params={"shared": "true"})).json()["items"] == []
    assert (
        await bob.http.delete(f"{API}/plans/{plan_id}/shares/{link['id']}", headers=bob.auth)
    ).status_code == 204
    assert (await http.get(link["url"])).status_code == 404
    again = await bob.http.delete(f"{API}/plans/{plan_id}/shares/{link['id']}", headers=bob.auth)
    assert again.status_code == 404

    # expired: works until expires_at, then 404 without anyone acting
    expires = datetime.now(UTC) + timedelta(seconds=4)
    r = await bob.post(
        f"{API}/plans/{plan_id}/share",
        json={"type": "user", "user": ana.username, "expires_at": expires.isoformat()},
    )
    assert r.status_code == 201, r.text
    r = await bob.post(
        f"{API}/plans/{plan_id}/share", json={"type": "link", "expires_at": expires.isoformat()}
    )
    expiring_link = r.json()["url"]
    assert (await ana.get(f"{API}/plans/{plan_id}")).status_code == 200
    assert (await http.get(expiring_link)).status_code == 200
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    assert (await ana.get(f"{API}/plans/{plan_id}")).status_code == 404
    assert (await http.get(expiring_link)).status_code == 404
    r = await bob.post(
        f"{API}/plans/{plan_id}/share", json={"type": "link", "expires_at": "2020-01-01T00:00:00Z"}
    )
    assert r.status_code == 422 and "expires_at" in r.text
