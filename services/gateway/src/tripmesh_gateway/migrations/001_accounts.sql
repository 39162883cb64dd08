-- Accounts: users, refresh tokens (hashed, single use) and the gateway's plan ownership index.
CREATE TABLE {schema}.users (
    id                text PRIMARY KEY,
    email             text NOT NULL,
    username          text NOT NULL,
    password_hash     text NOT NULL,
    subscription_tier text NOT NULL DEFAULT 'free',
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_login_at     timestamptz
);
-- E-mail is unique regardless of case: Ana@x.org and ana@x.org are one account.
CREATE UNIQUE INDEX users_email_lower_key ON {schema}.users (lower(email));

-- Refresh tokens are opaque random strings; only their SHA-256 is stored. A family is the
-- chain of rotations from one login: presenting an already used token revokes the family
-- (someone else holds a copy of it).
CREATE TABLE {schema}.refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     text NOT NULL REFERENCES {schema}.users (id) ON DELETE CASCADE,
    family_id   text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON {schema}.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry_idx ON {schema}.refresh_tokens (expires_at);

-- Which user owns which plan (the planner owns plan contents). `request` is the latest
-- request the gateway sent for the plan (resolved places included), `command` the exact
-- PlanCreate bytes so a retried create re-publishes the same Nats-Msg-Id.
CREATE TABLE {schema}.plans_index (
    plan_id          text PRIMARY KEY,
    user_id          text NOT NULL REFERENCES {schema}.users (id) ON DELETE CASCADE,
    idempotency_key  text,
    request_hash     text NOT NULL,
    request          jsonb NOT NULL,
    command          text NOT NULL,
    title            text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    publish_error    text,
    deleted_at       timestamptz
);
CREATE UNIQUE INDEX plans_index_idempotency_key ON {schema}.plans_index (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX plans_index_user_created_idx ON {schema}.plans_index (user_id, created_at DESC, plan_id);
