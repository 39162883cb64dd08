"""Granting and revoking the admin role: an operator's act, never an API call.

Two ways in: `python -m tripmesh_gateway grant-admin <email>` (and `revoke-admin`), and
`GATEWAY_ADMIN_EMAILS`, applied at every start-up to accounts that exist by then. Neither
verifies who owns an e-mail address (signup does not either): check the account first.
"""

from __future__ import annotations

from collections.abc import Sequence

from tripmesh_kit.logging import get_logger
from tripmesh_kit.pg import make_pool

from tripmesh_gateway.settings import Settings
from tripmesh_gateway.store import AccountStore, Role, migrate

log = get_logger(__name__)


async def grant_admins(store: AccountStore, emails: Sequence[str]) -> list[str]:
    """Make these accounts admins; returns the e-mails that have no account (yet)."""
    missing = []
    for email in emails:
        user = await store.set_role(email, Role.ADMIN)
        if user is None:
            missing.append(email)
        else:
            log.info("admin_granted", user_id=user.id, source="GATEWAY_ADMIN_EMAILS")
    if missing:
        # Signing up later does not make them admins: restart, or use grant-admin.
        log.warning("admin_emails_without_account", count=len(missing))
    return missing


async def set_role_command(settings: Settings, email: str, role: Role) -> int:
    """The CLI's work: exit status 0 when the account now has `role`, 1 when there is none."""
    await migrate(settings.database_url)  # a fresh database gets the role column too
    pool = make_pool(settings.database_url, name="gateway-cli", max_size=1)
    await pool.open()
    try:
        user = await AccountStore(pool).set_role(email, role)
    finally:
        await pool.close()
    if user is None:
        print(f"no account with e-mail {email}")
        return 1
    log.info("role_set", user_id=user.id, role=role.value, source="cli")
    print(f"{user.email} ({user.id}) is now {role.value}")
    return 0
