"""Validation errors -> RFC 9457 problem+json with `errors: [{field, message}]`, checked
through a tiny app that uses the gateway's handlers and bodies."""

from __future__ import annotations

from typing import Any

import httpx
import nats.errors
import psycopg
import pytest
from fastapi import FastAPI
from tripmesh_gateway.api.errors import ApiProblem, field_errors, field_name, install_error_handlers
from tripmesh_gateway.api.schemas import PlanCreateBody
from tripmesh_gateway.rpc import ServiceUnavailable


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("body", "destinations", 1), "destinations[1]"),
        (("body", "preferences", "diet", 0), "preferences.diet[0]"),
        (("query", "limit"), "limit"),
        (("header", "Idempotency-Key"), "Idempotency-Key"),
        (("body",), "body"),
        ((), "body"),
    ],
)
def test_field_names(loc: tuple[Any, ...], name: str) -> None:
    assert field_name(loc) == name


def test_json_decode_errors_name_the_body() -> None:
    [error] = field_errors(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 31),
                "msg": "JSON decode error",
                "ctx": {"error": "Expecting value"},
            }
        ]
    )
    assert error.field == "body"
    assert error.message == "malformed JSON: Expecting value at character 31"


def app_under_test() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/plans")
    async def create(body: PlanCreateBody) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/down")
    async def down() -> None:
        raise ServiceUnavailable("svc.ledger.summary", "timeout")

    @app.get("/teapot")
    async def teapot() -> None:
        raise ApiProblem(418, "I'm a teapot", "short and stout", kind="teapot", extra_field=1)

    @app.get("/bus-down")
    async def bus_down() -> None:
        raise nats.errors.ConnectionClosedError

    @app.get("/db-down")
    async def db_down() -> None:
        raise psycopg.OperationalError("connection refused")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_under_test(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


GOOD = {
    "title": "t",
    "destinations": ["Lisbon"],
    "start_date": "2027-05-01",
    "end_date": "2027-05-02",
    "budget_total": 10,
}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**GOOD, "end_date": "2027-04-30"}, "end_date", "end_date must not be before start_date"),
        ({**GOOD, "budget_total": -1}, "budget_total", "Input should be greater than or equal to 0"),
        (
            {**GOOD, "budget_currency": "ABC"},
            "budget_currency",
            "'ABC' is not an ISO 4217 currency code in use",
        ),
        (
            {**GOOD, "destinations": ["Lisbon", ""]},
            "destinations[1]",
            "String should have at least 1 character",
        ),
        ({**GOOD, "extra": 1}, "extra", "unknown field"),
        (
            {**GOOD, "traveler_count": "two"},
            "traveler_count",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
async def test_validation_problem_names_the_field(body: dict[str, Any], field: str, message: str) -> None:
    response = await call("POST", "/plans", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (422, "Unprocessable Content")
    assert {"field": field, "message": message} in problem["errors"]


async def test_currency_is_normalised() -> None:
    assert (await call("POST", "/plans", json={**GOOD, "budget_currency": "eur"})).status_code == 200


async def test_malformed_json() -> None:
    response = await call("POST", "/plans", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_other_errors_are_problems_too() -> None:
    down = await call("GET", "/down")
    assert (down.status_code, down.json()["service"], down.headers["retry-after"]) == (503, "ledger", "2")
    teapot = await call("GET", "/teapot")
    assert teapot.json() == {
        "type": "https://tripmesh.dev/problems/teapot",
        "title": "I'm a teapot",
        "status": 418,
        "detail": "short and stout",
        "extra_field": 1,
        "instance": "/teapot",
    }
    missing = await call("GET", "/nowhere")
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    boom = await call("GET", "/boom")
    assert boom.status_code == 500
    assert "secret internals" not in boom.text
    assert boom.headers["content-type"] == "application/problem+json"


async def test_outages_are_503_problems() -> None:
    bus = await call("GET", "/bus-down")
    db = await call("GET", "/db-down")
    assert (bus.status_code, bus.json()["type"]) == (503, "https://tripmesh.dev/problems/bus-unavailable")
    assert (db.status_code, db.json()["type"]) == (503, "https://tripmesh.dev/problems/database-unavailable")
    assert "connection refused" not in db.text
