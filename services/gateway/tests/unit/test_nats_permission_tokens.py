"""A user's NATS grant names the user as exactly one subject token (issue #12, test 10).

Before: `client_permissions("u.>")` granted `plans.evt.u.>.>` (every user's events under
`u`) and `inbox_prefix("")` gave `_INBOX.`; the builders trusted their caller. Now they
refuse an unsafe id like every subject builder in libs/contracts.
"""

import pytest
from tripmesh_contracts.ids import UnsafeTokenError
from tripmesh_gateway.nats_credentials import client_permissions, inbox_prefix


@pytest.mark.parametrize("bad", ["", "u.>", "*", ">", "a b", "ü", "u.v"])
def test_unsafe_user_ids_get_no_permissions(bad: str) -> None:
    with pytest.raises(UnsafeTokenError):
        client_permissions(bad)
    with pytest.raises(UnsafeTokenError):
        inbox_prefix(bad)


def test_a_safe_id_is_one_token_in_every_grant() -> None:
    granted = client_permissions("user-1")
    assert "plans.evt.user-1.>" in granted.subscribe
    assert "_INBOX.user-1.>" in granted.subscribe
    assert all("user-1" in s.split(".") for s in granted.subscribe)
