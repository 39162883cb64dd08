-- Accounts, part 2 (issue #8): profile fields, sessions, API keys, rate-limit counters.

-- Profile fields from the seeds' users table; usernames are unique regardless of case.
ALTER TABLE {schema}.users
    ADD COLUMN first_name  text,
    ADD COLUMN last_name   text,
    ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at  timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX users_username_lower_key ON {schema}.users (lower(username));

-- A session is one login: its refresh tokens form one family (refresh_tokens.family_id =
-- user_sessions.id) and every access token it issues names it (`sid` claim). Revoking the
-- session (logout, refresh-token reuse, password change elsewhere) refuses its access tokens
-- at once, not only when they expire.
CREATE TABLE {schema}.user_sessions (
    id             text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES {schema}.users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_activity  timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text
);
CREATE INDEX user_sessions_user_idx ON {schema}.user_sessions (user_id) WHERE revoked_at IS NULL;

-- API keys for machine clients: `tmk_<random>`, shown once; only its SHA-256 is stored
-- (256 random bits need no slow hash). `prefix` is what a listing shows to tell keys apart.
CREATE TABLE {schema}.api_keys (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES {schema}.users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON {schema}.api_keys (user_id, created_at DESC);

-- Fixed-window request counters shared by every gateway replica: one upsert per request.
CREATE TABLE {schema}.rate_counters (
    bucket       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_counters_window_idx ON {schema}.rate_counters (window_start);
