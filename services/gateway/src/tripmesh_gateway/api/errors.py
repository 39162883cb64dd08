"""Every error leaves the gateway as RFC 9457 `application/problem+json`.

Validation errors carry `errors: [{field, message}]` with the field written the way a client
wrote it (`destinations[1]`, `end_date`, `limit`), never pydantic's internal `loc` tuples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import nats.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from tripmesh_kit.logging import get_logger
from tripmesh_kit.ops import problem
from tripmesh_kit.pg import is_store_outage

from tripmesh_gateway.domain import FieldError
from tripmesh_gateway.rpc import ServiceError, ServiceUnavailable

log = get_logger(__name__)

PROBLEM_BASE = "https://tripmesh.dev/problems/"
SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
BEARER_CHALLENGE = 'Bearer realm="tripmesh"'
BODY_NOT_PARSED = "There was an error parsing the body"


class ApiProblem(Exception):
    """Raise from a route or dependency to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self, instance: str | None = None) -> Response:
        body: dict[str, Any] = dict(self.extra)
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        if instance:
            body["instance"] = instance
        type_ = PROBLEM_BASE + self.kind if self.kind else "about:blank"
        return problem(self.status, self.title, self.detail, type_=type_, headers=self.headers, **body)


def unauthorized(detail: str, *, invalid_token: bool = True) -> ApiProblem:
    """401 with the RFC 6750 challenge; `error="invalid_token"` when a token was sent."""
    challenge = BEARER_CHALLENGE + (', error="invalid_token"' if invalid_token else "")
    return ApiProblem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": challenge}
    )


def forbidden(detail: str) -> ApiProblem:
    """403: who the caller is is known, and it is not allowed (401 is for unknown callers)."""
    return ApiProblem(403, "Forbidden", detail, kind="forbidden")


def not_found(what: str = "plan") -> ApiProblem:
    # The same answer whether the plan does not exist or belongs to someone else (BOLA).
    return ApiProblem(404, "Not Found", f"{what} not found", kind="not-found")


def validation_problem(errors: Sequence[FieldError], detail: str | None = None) -> ApiProblem:
    return ApiProblem(
        422, "Unprocessable Content", detail or "the request is not valid", kind="validation", errors=errors
    )


def field_name(loc: Sequence[str | int]) -> str:
    """("body", "destinations", 1) -> "destinations[1]"; ("query", "limit") -> "limit"."""
    parts = list(loc)
    source = str(parts.pop(0)) if parts and parts[0] in SOURCES else None
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or source or "body"


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """pydantic/FastAPI error dicts -> FieldErrors a client can act on."""
    errors = []
    for err in raw:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            # loc is ("body", <character offset>): name the body, say where it broke.
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            position = loc[1] if len(loc) > 1 else "?"
            errors.append(FieldError("body", f"malformed JSON: {reason} at character {position}"))
            continue
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(field_name(loc), message.removeprefix("Value error, ")))
    return errors


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return exc.response(instance=request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(field_errors(exc.errors())).response(instance=request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        if exc.status_code == 400 and exc.detail == BODY_NOT_PARSED:
            # FastAPI's answer to a body it cannot decode at all (not UTF-8): the same 422 as
            # malformed JSON, so every body error is one documented status (found by schemathesis).
            errors = [FieldError("body", "malformed body: not UTF-8 encoded JSON")]
            return validation_problem(errors).response(instance=request.url.path)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return ApiProblem(exc.status_code, _title(exc.status_code), detail, headers=headers).response(
            instance=request.url.path
        )

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceUnavailable)
        service = exc.subject.split(".")[1] if exc.subject.count(".") >= 2 else exc.subject
        return ApiProblem(
            503,
            "Service Unavailable",
            f"the {service} service did not answer ({exc.reason})",
            kind="service-unavailable",
            service=service,
            headers={"Retry-After": "2"},
        ).response(instance=request.url.path)

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        status = exc.error.status if 400 <= exc.error.status <= 599 else 502
        return ApiProblem(status, exc.error.title, exc.error.detail).response(instance=request.url.path)

    async def on_bus_error(request: Request, exc: Exception) -> Response:
        log.warning("bus_unavailable", path=request.url.path, error=repr(exc)[:200])
        return ApiProblem(
            503,
            "Service Unavailable",
            "the message bus is unavailable",
            kind="bus-unavailable",
            headers={"Retry-After": "2"},
        ).response(instance=request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if is_store_outage(exc):
            log.warning("database_unavailable", path=request.url.path, error=repr(exc)[:200])
            return ApiProblem(
                503,
                "Service Unavailable",
                "the database is unavailable",
                kind="database-unavailable",
                headers={"Retry-After": "2"},
            ).response(instance=request.url.path)
        log.exception("unhandled_error", path=request.url.path)
        return ApiProblem(500, "Internal Server Error", "an unexpected error occurred").response()

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ServiceUnavailable, on_unavailable)
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(nats.errors.Error, on_bus_error)
    app.add_exception_handler(Exception, on_unexpected)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
