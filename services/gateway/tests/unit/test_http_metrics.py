"""Route templates for metric labels, with and without FastAPI's route context."""

from __future__ import annotations

from types import SimpleNamespace

from tripmesh_gateway.http_metrics import UNMATCHED, route_template


def test_unmatched_requests_share_one_label() -> None:
    assert route_template({"path": "/random/123"}) == UNMATCHED


def test_effective_route_context_wins() -> None:
    scope = {
        "route": object(),
        "path": "/api/v1/plans/p1",
        "fastapi": {"effective_route_context": SimpleNamespace(path_format="/api/v1/plans/{plan_id}")},
    }
    assert route_template(scope) == "/api/v1/plans/{plan_id}"


def test_template_rebuilt_from_path_params() -> None:
    scope = {
        "route": object(),
        "path": "/api/v1/plans/p1/versions/3",
        "path_params": {"plan_id": "p1", "version": 3},
    }
    assert route_template(scope) == "/api/v1/plans/{plan_id}/versions/{version}"
