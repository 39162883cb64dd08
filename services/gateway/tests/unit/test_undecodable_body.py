"""A body FastAPI cannot decode at all (not UTF-8) is the documented 422 problem naming the
body, like malformed JSON - not an undocumented 400 (schemathesis found it)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from tripmesh_gateway.api.errors import install_error_handlers


class Thing(BaseModel):
    name: str


def test_a_body_that_is_not_utf8_is_a_422_naming_the_body() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        return thing

    client = TestClient(app)
    response = client.post("/things", content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "body"
    ok = client.post("/things", json={"name": "x"})
    assert ok.status_code == 200
