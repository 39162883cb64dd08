"""Regression (issue #12, test 10): a share id that is no UUID is a 404, not a 500.

Before: `DELETE /plans/{id}/shares/<id with a NUL byte>` reached Postgres, which refuses NUL
in text (psycopg.DataError), and the owner got 500 `unhandled_error`. Now the id is checked
as a token first, like every other id in a path.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from .conftest import Users
from .test_plans_read import create

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("share_id", ["a\x00b", "x.>", "ü", "a b"])
async def test_a_malformed_share_id_is_not_found(
    client: httpx.AsyncClient, users: Users, share_id: str
) -> None:
    _, owner_auth = await users.new()
    plan_id = await create(client, owner_auth)
    r = await client.delete(f"/plans/{plan_id}/shares/{quote(share_id, safe='')}", headers=owner_auth)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
