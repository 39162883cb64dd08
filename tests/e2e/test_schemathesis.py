"""Issue #8: schemathesis against the gateway's OpenAPI document on the real stack.

Every operation gets a bounded, reproducible run (fixed seed, `MAX_EXAMPLES` generated cases
plus schemathesis' explicit-example and coverage phases), authenticated as a real user whose
completed plan, versions, shares and link token fill the path parameters, so the cases reach
the planner, ledger and vector-sync behind the gateway. Checks: no 5xx (`not_a_server_error`),
responses conform to their documented schema (`response_schema_conformance`) and status codes
(`status_code_conformance`). How many cases ran is printed and written to
reports/e2e/schemathesis.json.

What is left out, and why:
- `POST /auth/logout` runs with a token of its own: it ends the session it is called with,
  which would turn every later case into a 401.
- `DELETE /plans/{plan_id}` gets a plan of its own, so deleting it does not leave every other
  case on a deleted plan (they would all be 404, which conforms, but tests nothing).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25
SEED = 20260808
API = "/api/v1"
PASSWORD = "a-long-enough-passphrase"
REPORT = Path(__file__).resolve().parents[2] / "reports" / "e2e" / "schemathesis.json"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@dataclass
class Fixtures:
    base_url: str
    token: str
    logout_token: str
    plan_id: str
    plan_to_delete: str
    share_id: str
    link_token: str


def login(http: httpx.Client, email: str) -> str:
    r = http.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def signup(http: httpx.Client, name: str) -> str:
    tag = uuid.uuid4().hex[:10]
    email = f"{name}-{tag}@example.com"
    r = http.post(
        f"{API}/auth/signup",
        json={
            "email": email,
            "username": f"{name}_{tag}",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    return email


def finished_plan(http: httpx.Client, auth: dict[str, str], **overrides: Any) -> str:
    body = {
        "title": "Schemathesis in Lisbon",
        "destinations": ["Lisbon"],
        "start_date": "2027-05-01",
        "end_date": "2027-05-03",
        "budget_total": 2000,
        "budget_currency": "EUR",
        **overrides,
    }
    r = http.post(f"{API}/plans", json=body, headers=auth)
    assert r.status_code == 202, r.text
    plan_id = str(r.json()["id"])
    deadline = time.monotonic() + 180  # a liveness bound
    while http.get(f"{API}/plans/{plan_id}", headers=auth).json()["status"] not in (
        "completed",
        "partial",
        "failed",
    ):
        assert time.monotonic() < deadline, "the plan never finished"
        time.sleep(0.3)
    return plan_id


@pytest.fixture(scope="module")
def fuzz_fixtures(stack: Any) -> Iterator[Fixtures]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        email = signup(http, "fuzz")
        auth = {"Authorization": f"Bearer {login(http, email)}"}
        reader = signup(http, "reader")
        plan_id = finished_plan(http, auth)
        plan_to_delete = finished_plan(http, auth, title="To be deleted")
        shared = http.post(
            f"{API}/plans/{plan_id}/share", json={"type": "user", "user": reader}, headers=auth
        )
        assert shared.status_code == 201, shared.text
        link = http.post(f"{API}/plans/{plan_id}/share", json={"type": "link"}, headers=auth)
        assert link.status_code == 201, link.text
        yield Fixtures(
            base_url=stack.gateway_url,
            token=auth["Authorization"].removeprefix("Bearer "),
            logout_token=login(http, email),
            plan_id=plan_id,
            plan_to_delete=plan_to_delete,
            share_id=shared.json()["id"],
            link_token=link.json()["token"],
        )


@pytest.fixture(scope="module")
def gateway_schema(fuzz_fixtures: Fixtures) -> Any:
    f = fuzz_fixtures
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": f.base_url,
            "headers": {"Authorization": f"Bearer {f.token}"},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "parameters": {
                "plan_id": f.plan_id,
                "version": 1,
                "share_id": f.share_id,
                "token": f.link_token,
            },
            "operations": [
                {
                    "include-path": f"{API}/plans/{{plan_id}}",
                    "include-method": "DELETE",
                    "parameters": {"plan_id": f.plan_to_delete},
                },
                {
                    "include-path": f"{API}/auth/logout",
                    "headers": {"Authorization": f"Bearer {f.logout_token}"},
                },
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{f.base_url}/openapi.json", config=config)


def run_operation(operation: Any, mode: GenerationMode, cases: list[str], failures: list[str]) -> None:
    """MAX_EXAMPLES cases of one operation in one mode; failures collected, not raised, so
    one run reports every operation that fails."""

    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case as found
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        cases.append(operation.label)
        try:
            case.call_and_validate(checks=CHECKS, timeout=30)
        except (FailureGroup, Exception) as exc:  # collected, reported at the end
            failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")

    try:
        check()
    except Unsatisfiable:  # negative mode, nothing to make invalid (e.g. no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_gateway_conforms_to_its_openapi(gateway_schema: Any) -> None:
    cases: list[str] = []
    failures: list[str] = []
    operations = [result.ok() for result in gateway_schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(operation, mode, cases, failures)
    per_operation = {label: cases.count(label) for label in dict.fromkeys(cases)}
    print(f"\nschemathesis: {len(cases)} cases over {len(per_operation)} operations (seed {SEED})")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "seed": SEED,
                "max_examples": MAX_EXAMPLES,
                "total": len(cases),
                "cases": per_operation,
                "failures": failures,
            },
            indent=2,
        )
    )
    assert not failures, f"{len(failures)} failing cases:\n" + "\n\n".join(failures[:30])
