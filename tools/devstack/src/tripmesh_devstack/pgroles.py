"""One Postgres role per service, owning its schemas and nothing else (ARCHITECTURE §8).

A role is a plain login role (no superuser, no CREATEDB / CREATEROLE, no CREATE on the
database): it can use only the schemas it owns, so it can never read another service's
tables (no USAGE on their schemas) and row-level security would bind it. The schemas are
created here, by the superuser, with the role as owner; the service's own migrations then
run as the role. Objects a superuser created in those schemas before roles existed (a data
directory from an earlier `make up`) are handed over to the role.
"""

from __future__ import annotations

import re

from tripmesh_devstack.pgtools import run_psql

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ensure_role_sql(role: str, password: str) -> str:
    r = _ident(role)
    return f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(r)}) THEN
    CREATE ROLE {r};
  END IF;
END $$;
ALTER ROLE {r} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD {_literal(password)};
"""


def own_schema_sql(role: str, schema: str) -> str:
    """Create `schema` owned by `role`, or give it (and everything in it) to `role`."""
    r, s = _ident(role), _ident(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r};
ALTER SCHEMA {s} OWNER TO {r};
DO $$
DECLARE obj record;
BEGIN
  FOR obj IN
    SELECT format('ALTER %s %I.%I OWNER TO {r}',
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                 WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END,
                  n.nspname, c.relname) AS stmt
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = {_literal(s)} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND pg_get_userbyid(c.relowner) <> {_literal(r)}
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO {r}', p.oid::regprocedure)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = {_literal(s)} AND pg_get_userbyid(p.proowner) <> {_literal(r)}
    UNION ALL
    SELECT format('ALTER TYPE %I.%I OWNER TO {r}', n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = {_literal(s)} AND t.typtype IN ('e', 'd', 'r', 'c')
      AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      AND pg_get_userbyid(t.typowner) <> {_literal(r)}
  LOOP
    BEGIN
      EXECUTE obj.stmt;
    EXCEPTION WHEN feature_not_supported OR wrong_object_type OR object_not_in_prerequisite_state THEN
      NULL;  -- a sequence owned by a column follows its table
    END;
  END LOOP;
END $$;
"""


def ensure_service_role(
    admin_url: str, database_url: str, role: str, password: str, schemas: list[str]
) -> None:
    """Idempotent: the role exists with `password`, owns `schemas` in `database_url`'s
    database. `admin_url`/`database_url`: superuser URLs (any database / the target one)."""
    run_psql(admin_url, ensure_role_sql(role, password))
    if schemas:
        run_psql(database_url, "".join(own_schema_sql(role, schema) for schema in schemas))
