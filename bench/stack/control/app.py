"""The control's HTTP API: the part of tripmesh's public API the bench client uses, same shapes.

POST /api/v1/auth/signup, POST /api/v1/auth/login (any later bearer token is accepted: a
token names its user), POST /api/v1/plans (validated by the gateway's own body model, places
resolved by the gateway's own resolver, 202 with the plan), GET /api/v1/plans/{id}/events
(SSE: `id:` position, `event:` kind, `data:` PlanEvent JSON, ending after the terminal event),
GET /readyz. Errors are problem+json, as the gateway's.

No `from __future__ import annotations` here: FastAPI resolves the dependencies declared
inside `create_app` from their annotations, which must be objects, not strings.
"""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from tripmesh_contracts import PlanRequest, new_id
from tripmesh_gateway.api.schemas import PlanCreateBody
from tripmesh_gateway.domain import resolve_places
from tripmesh_planner.checkpoints import make_checkpoint_pool, setup_checkpoints
from tripmesh_planner.settings import Settings as PlannerSettings

from bench.stack.control.agents import InProcessAgents
from bench.stack.control.planner import ControlPlanner, ControlStore, EventLog, PlanStream, make_runtime

KEEPALIVE_SECONDS = 15.0


class Signup(BaseModel):
    email: str
    username: str
    password: str
    password_confirm: str | None = None


class Login(BaseModel):
    email: str
    password: str


class ProblemError(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.body = {"type": "about:blank", "status": status, "title": title, "detail": detail, **extra}


def create_app(database_url: str, checkpoint_pool_size: int = 2, db_pool_size: int = 4) -> FastAPI:
    planner_settings = PlannerSettings(database_url=database_url)
    agents = InProcessAgents(planner_settings)
    events = EventLog()
    users: dict[str, tuple[str, str]] = {}  # email -> (user id, password)
    tokens: dict[str, str] = {}  # token -> user id
    state: dict[str, ControlPlanner] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        schema = planner_settings.checkpoint_schema
        await setup_checkpoints(database_url, schema)
        checkpoints = make_checkpoint_pool(database_url, schema, checkpoint_pool_size)
        pool = AsyncConnectionPool(database_url, min_size=1, max_size=db_pool_size, open=False)
        await checkpoints.open(wait=True)
        await pool.open(wait=True)
        await asyncio.to_thread(agents.warm_up)
        store = ControlStore(pool)
        await store.create_tables()
        rt = make_runtime(planner_settings, store, events, agents)
        state["planner"] = ControlPlanner(rt, events, AsyncPostgresSaver(checkpoints))  # type: ignore[arg-type]
        try:
            yield
        finally:
            for task in list(state["planner"].running):
                task.cancel()
            await pool.close()
            await checkpoints.close()

    app = FastAPI(title="tripmesh control (bench)", lifespan=lifespan)

    @app.exception_handler(ProblemError)
    async def problem(_: Request, exc: ProblemError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.body["status"], media_type="application/problem+json")

    def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProblemError(401, "Unauthorized", "a bearer token is required", field="Authorization")
        # no auth hardening: an unknown token is a user of its own
        return tokens.get(token) or str(uuid.uuid5(uuid.NAMESPACE_URL, token))

    User = Annotated[str, Depends(current_user)]

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        if "planner" not in state:
            raise ProblemError(503, "Service Unavailable", "starting")
        return {"status": "ready"}

    @app.post("/api/v1/auth/signup", status_code=201)
    async def signup(body: Signup) -> dict[str, str]:
        if body.email in users:
            raise ProblemError(409, "Conflict", "email already registered", field="email")
        users[body.email] = (new_id(), body.password)
        return {"id": users[body.email][0], "email": body.email, "username": body.username}

    @app.post("/api/v1/auth/login")
    async def login(body: Login) -> dict[str, str]:
        user = users.get(body.email)
        if user is None or user[1] != body.password:
            raise ProblemError(401, "Unauthorized", "wrong email or password", field="password")
        token = secrets.token_urlsafe(32)
        tokens[token] = user[0]
        return {"access_token": token, "token_type": "bearer"}

    @app.post("/api/v1/plans", status_code=202)
    async def create_plan(body: PlanCreateBody, user: User) -> dict[str, Any]:
        resolved = await asyncio.to_thread(resolve_places, body.destinations, body.origin)
        if resolved.errors:
            first = resolved.errors[0]
            raise ProblemError(422, "Unprocessable Content", first.message, field=first.field)
        fields = body.model_dump(exclude={"plan_budget_usd"})
        request = PlanRequest.model_validate(
            {**fields, "destinations": resolved.destinations, "origin": resolved.origin}
        )
        plan_id = new_id()
        await state["planner"].start(plan_id, user, request.model_dump(mode="json"))
        return {"id": plan_id, "user_id": user, "title": request.title, "status": "processing", "version": 1}

    def owned_stream(plan_id: str, user: User) -> PlanStream:
        """Before the response starts: a 404 is still a status, not a broken stream."""
        stream = events.plans.get(plan_id)
        if stream is None or stream.user_id != user:
            raise ProblemError(404, "Not Found", "no such plan among yours", field="plan_id")
        return stream

    @app.get("/api/v1/plans/{plan_id}/events", response_class=EventSourceResponse)
    async def plan_events(
        stream: Annotated[PlanStream, Depends(owned_stream)],
    ) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="stream open", retry=3000)
        sent = 0
        while True:
            while sent < len(stream.events):
                event = stream.events[sent]
                sent += 1
                yield ServerSentEvent(id=str(sent), event=event.kind.value, raw_data=event.model_dump_json())
            if stream.ended:
                return
            stream.changed.clear()
            try:
                await asyncio.wait_for(stream.changed.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")

    return app
