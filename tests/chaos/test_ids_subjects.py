"""Issue #12, test 10 - ids and subjects: an id carrying `.`, `*`, `>`, whitespace or unicode
never yields a subject with extra tokens or wildcards.

- libs/contracts: every subject builder that takes an id (libs/contracts/tests/test_subjects.py
  already covers `plan_event` and `check_token`; this extends the property to the others, and
  to the subjects the gateway builds itself: NATS client permissions and the user-event filter);
- HTTP: against a running gateway (its own small stack: NATS, Postgres, the gateway process),
  every route that takes an id in its path or query answers 4xx problem+json to such an id,
  and nothing is published on the bus meanwhile (a subscriber on `>` sees every publish).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import nats
import pytest
from _stacks_b import only, plan_body, running_stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report import ChaosReport
from tripmesh_contracts import subjects
from tripmesh_contracts.ids import UnsafeTokenError, check_token
from tripmesh_devstack.supervisor import Stack
from tripmesh_gateway.events import user_events_filter
from tripmesh_gateway.nats_credentials import client_permissions, inbox_prefix

pytestmark = pytest.mark.chaos

HOSTILE = [".", "*", ">", " ", "\t", "\n", "é", "ü", "😀", "\u00a0", "/", "%", "\x00", "..", ".>", ".*"]

# ids: anything at all, and safe-looking ids with a hostile character somewhere in them
ids = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.from_regex(r"[A-Za-z0-9_-]{0,20}", fullmatch=True),
        st.sampled_from(HOSTILE),
        st.from_regex(r"[A-Za-z0-9_-]{0,20}", fullmatch=True),
    ),
)


def is_safe(value: str) -> bool:
    try:
        check_token(value)
    except UnsafeTokenError:
        return False
    return True


def assert_tokens(subject: str, expected: list[str]) -> None:
    """`subject` is exactly the `expected` tokens (`*`/`>` only where the builder put them)."""
    assert subject.split(".") == expected, subject
    assert not any(c.isspace() for c in subject), subject


# -- libs/contracts and the gateway's own subject helpers -----------------------------------

BUILDERS: dict[str, tuple[Callable[[str], str], Callable[[str], list[str]]]] = {
    "agent_result": (subjects.agent_result, lambda v: ["agents", "result", v]),
    "plan_event(plan)": (
        lambda v: subjects.plan_event("u1", v, "completed"),
        lambda v: ["plans", "evt", "u1", v, "completed"],
    ),
    "plan_events_filter(user)": (subjects.plan_events_filter, lambda v: ["plans", "evt", v, ">"]),
    "plan_events_filter(user, plan)": (
        lambda v: subjects.plan_events_filter("u1", v),
        lambda v: ["plans", "evt", "u1", v, ">"],
    ),
    "plan_changed": (subjects.plan_changed, lambda v: ["plans", "changed", v]),
    "usage": (subjects.usage, lambda v: ["usage", "llm", v]),
    "cost_alert": (subjects.cost_alert, lambda v: ["users", "evt", v, subjects.COST_ALERT_KIND]),
    "user_event(user)": (lambda v: subjects.user_event(v, "x"), lambda v: ["users", "evt", v, "x"]),
    "user_event(kind)": (lambda v: subjects.user_event("u1", v), lambda v: ["users", "evt", "u1", v]),
    "gateway user_events_filter": (user_events_filter, lambda v: ["users", "evt", v, ">"]),
    "gateway inbox_prefix": (inbox_prefix, lambda v: ["_INBOX", v]),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@given(value=ids)
@settings(max_examples=300, deadline=None)
def test_subject_builders_refuse_or_keep_one_token(name: str, value: str) -> None:
    build, expected = BUILDERS[name]
    try:
        subject = build(value)
    except UnsafeTokenError:
        assert not is_safe(value)
        return
    assert is_safe(value), f"{name} accepted {value!r}: {subject!r}"
    assert_tokens(subject, expected(value))


@given(value=ids)
@settings(max_examples=300, deadline=None)
def test_gateway_nats_permissions_never_widen(value: str) -> None:
    """A user's NATS permissions name that user as exactly one token (a `>` in a user id
    would have granted every user's events)."""
    try:
        permissions = client_permissions(value)
    except UnsafeTokenError:
        assert not is_safe(value)
        return
    assert is_safe(value), f"permissions built for {value!r}"
    # the grant of any safe id is the grant of a placeholder id with that one token replaced
    model = client_permissions("U0")

    def swap(subject: str) -> str:
        return ".".join(value if t == "U0" else t for t in subject.split("."))

    assert permissions.publish == [swap(s) for s in model.publish]
    assert permissions.subscribe == [swap(s) for s in model.subscribe]


# -- the HTTP layer ---------------------------------------------------------------------------


class BusWatch:
    """A subscriber on `>` in a thread of its own (hypothesis examples run synchronously):
    every application subject published while it runs (JetStream API and inbox traffic aside)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[str] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await nats.connect(self.url)

        async def seen(msg: Any) -> None:
            if not msg.subject.startswith(("$JS.", "$SYS.", "$KV.", "_INBOX.")):
                self.seen.append(msg.subject)

        await nc.subscribe(">", cb=seen)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.flush()
        await nc.close()

    def __enter__(self) -> BusWatch:
        self._thread.start()
        assert self._ready.wait(30), "could not subscribe to the bus"
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # late publishes still arrive
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("chaos-ids"), only("gateway")) as stack:
        yield stack


@pytest.fixture(scope="module")
def owner(gateway_stack: Stack) -> Iterator[tuple[httpx.Client, str]]:
    """A logged-in client of a user owning one plan (accepted; no planner runs here)."""
    with httpx.Client(base_url=gateway_stack.gateway_url + "/api/v1", timeout=10) as http:
        tag = uuid.uuid4().hex[:10]
        email, password = f"ids-{tag}@example.com", "a-long-enough-passphrase"
        body = {"email": email, "username": f"ids_{tag}", "password": password, "password_confirm": password}
        assert http.post("/auth/signup", json=body).status_code == 201
        login = http.post("/auth/login", json={"email": email, "password": password})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        created = http.post("/plans", json=plan_body())
        assert created.status_code == 202, created.text
        yield http, str(created.json()["id"])


def id_routes(value: str, own_plan: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) of every route taking an id, with `value` as the id."""
    # `.` too: unencoded, `/plans/./cancel` would be a dot segment the client folds away
    v = quote(value, safe="").replace(".", "%2E")
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/plans/{v}", {}),
        ("PUT", f"/plans/{v}", {"json": {"feedback": "more museums"}}),
        ("DELETE", f"/plans/{v}", {}),
        ("POST", f"/plans/{v}/cancel", {"json": {}}),
        ("POST", f"/plans/{v}/decision", {"json": {"approve": True}}),
        ("GET", f"/plans/{v}/versions", {}),
        ("GET", f"/plans/{v}/versions/1", {}),
        ("GET", f"/plans/{v}/events", {}),
        ("GET", f"/plans/{v}/similar", {}),
        ("POST", f"/plans/{v}/share", {"json": {"kind": "link"}}),
        ("GET", f"/plans/{v}/shares", {}),
        ("DELETE", f"/plans/{v}/shares/x", {}),
        ("DELETE", f"/plans/{own_plan}/shares/{v}", {}),
        ("GET", f"/shared/{v}", {}),
        ("DELETE", f"/sessions/{v}", {}),
        ("DELETE", f"/api-keys/{v}", {}),
        ("GET", f"/costs/budget?user_id={v}", {}),
        ("GET", f"/costs/alerts?user_id={v}", {}),
    ]
    return plan


def test_http_ids_are_refused_and_nothing_is_published(
    gateway_stack: Stack, owner: tuple[httpx.Client, str], tier: str
) -> None:
    http, own_plan = owner
    examples = 40 if tier == "pr" else 400
    answers: dict[int, int] = {}
    bad: list[str] = []

    # An empty id or one with `/` is another route (`/plans/` is the list; ASGI servers
    # decode %2F before routing), not an id: those are routing, not subjects.
    def routable(value: str) -> bool:
        return bool(value) and "/" not in value

    hostile = [c for c in HOSTILE if c != "/"]

    @given(value=st.one_of(ids.filter(routable), st.sampled_from(hostile).map(lambda c: own_plan + c)))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    def property_(value: str) -> None:
        for method, path, kw in id_routes(value, own_plan):
            r = http.request(method, path, **kw)
            answers[r.status_code] = answers.get(r.status_code, 0) + 1
            problem = r.headers.get("content-type", "").startswith("application/problem+json")
            if not (400 <= r.status_code < 500 and problem):
                bad.append(
                    f"{method} {path} -> {r.status_code} {r.headers.get('content-type')} {r.text[:200]}"
                )
            assert 400 <= r.status_code < 500 and problem, bad[-1]

    with ChaosReport("ids_and_subjects", tier=tier, examples=examples, routes=18) as report:
        with BusWatch(gateway_stack.nats_url) as bus:
            try:
                property_()
            finally:
                requests = sum(answers.values())
                report.count(attempted=requests, http_status=dict(sorted(answers.items())))
                refused_phase = list(bus.seen)
            # the control: a valid command on the same plan is seen by the same watcher
            control = http.post(f"/plans/{own_plan}/cancel", json={})
        report.count(published=len(refused_phase))
        report.check("every hostile id answered 4xx problem+json", not bad, bad[:5])
        report.check("nothing published for a refused id", not refused_phase, refused_phase[:10])
        report.check(
            "control: the watcher sees a valid command",
            control.status_code == 202 and bus.seen[len(refused_phase) :] == [subjects.PLAN_CMD_CANCEL],
            {"status": control.status_code, "seen": bus.seen[len(refused_phase) :]},
        )
        report.assert_all()
