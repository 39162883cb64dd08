"""The stack's identities on the servers it starts (issue #8): who connects as what.

NATS: users `admin` (the operator: provisioning, tests, tripctl) and one per service with
the permissions of `identities.py`; passwords in `<data>/nats/users.json` (0600). Postgres:
the superuser (password in `<data>/postgres/superuser.password`) and one role per service
that has a schema; passwords in `<data>/postgres/roles.json` (0600).

A service gets `NATS_URL` (no credentials) with `NATS_USER` / `NATS_PASSWORD`, and
`<PREFIX>PROVISION_STREAMS=false` (the stack provisions as `admin`); a service with schemas
gets `<PREFIX>DATABASE_URL` for its role and no superuser `DATABASE_URL`. A service the
stack has no identity for (tests' dummies) gets the operator's URLs. Servers given by URL
(`NATS_URL`, `DATABASE_URL`) are used as they are, without identities.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tripmesh_devstack.callout import issuer_public_key, load_or_create_issuer_seed
from tripmesh_devstack.credentials import load_or_create_passwords
from tripmesh_devstack.identities import ADMIN, SERVICE_IDENTITIES, nats_identity_names
from tripmesh_devstack.nats import AuthCallout, NatsServer, NatsUser
from tripmesh_devstack.pgroles import ensure_service_role
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_devstack.services import StackError


class StackAccess:
    def __init__(self, data_dir: Path, *, nats: bool, postgres: bool) -> None:
        self.nats_passwords = (
            load_or_create_passwords(data_dir / "nats" / "users.json", nats_identity_names()) if nats else {}
        )
        # Clients' own NATS credentials (issued by the gateway): auth callout, signed with this.
        self.callout_seed = (
            load_or_create_issuer_seed(data_dir / "nats" / "callout-issuer.seed") if nats else None
        )
        roles = [i.role for i in SERVICE_IDENTITIES.values() if i.schemas]
        self.role_passwords = (
            load_or_create_passwords(data_dir / "postgres" / "roles.json", roles) if postgres else {}
        )

    def nats_users(self) -> list[NatsUser]:
        if not self.nats_passwords:
            return []
        users = [NatsUser(ADMIN, self.nats_passwords[ADMIN])]
        for name, identity in SERVICE_IDENTITIES.items():
            perms = identity.nats
            users.append(NatsUser(name, self.nats_passwords[name], perms.publish, perms.subscribe))
        return users

    def nats_callout(self) -> AuthCallout | None:
        """Every identity of ours bypasses the callout; anyone else is asked about to the
        gateway, which answers `$SYS.REQ.USER.AUTH` with the seed it gets from us."""
        if self.callout_seed is None:
            return None
        return AuthCallout(issuer_public_key(self.callout_seed), nats_identity_names())

    def admin_nats_url(self, nats: NatsServer) -> str:
        return nats.url_for(ADMIN) if nats.users else nats.url

    def service_env(
        self, name: str, nats: NatsServer | None, postgres: PostgresServer | None
    ) -> dict[str, str]:
        identity = SERVICE_IDENTITIES.get(name)
        env: dict[str, str] = {}
        if nats is not None and nats.users:
            if identity is None:
                env["NATS_URL"] = self.admin_nats_url(nats)
            else:
                env["NATS_USER"] = name
                env["NATS_PASSWORD"] = self.nats_passwords[name]
                env[f"{identity.env_prefix}PROVISION_STREAMS"] = "false"
                if name == "gateway" and nats.auth_callout is not None and self.callout_seed:
                    env["GATEWAY_NATS_CALLOUT_ISSUER_SEED"] = self.callout_seed
                    env["GATEWAY_NATS_CLIENT_URL"] = nats.url
        if postgres is not None and identity is not None and identity.schemas:
            role = identity.role
            env[f"{identity.env_prefix}DATABASE_URL"] = postgres.url_for(
                postgres.database, role, self.role_passwords[role]
            )
        return env

    def withheld(self, name: str, nats: NatsServer | None, postgres: PostgresServer | None) -> list[str]:
        """Shared variables a service with its own identity must not see."""
        return ["DATABASE_URL"] if postgres is not None and name in SERVICE_IDENTITIES else []

    def ensure_roles(self, postgres: PostgresServer) -> None:
        for identity in SERVICE_IDENTITIES.values():
            if identity.schemas:
                ensure_service_role(
                    postgres.admin_url,
                    postgres.url,
                    identity.role,
                    self.role_passwords[identity.role],
                    list(identity.schemas),
                )

    def provision_streams(self, nats: NatsServer, say: Callable[[str], None]) -> None:
        """Streams and durables, as `admin`, before any service starts (services may not)."""
        if not nats.users:
            return
        if importlib.util.find_spec("tripmesh_kit") is None:
            say("tripmesh_kit is not installed: streams not provisioned")
            return
        result = subprocess.run(
            [sys.executable, "-m", "tripmesh_kit.provision"],
            env={**os.environ, "NATS_URL": self.admin_nats_url(nats)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"provisioning streams failed:\n{result.stderr[-4000:]}")
