-- Plan shares (issue #8): read-only access to one plan, for a named user or for anyone holding
-- a link token. Only the owner manages them. A link token is random and shown once; only its
-- SHA-256 is stored. A share stops working the moment it is revoked or expires (every read
-- checks revoked_at/expires_at), and with its plan (deleted_at on plans_index).
CREATE TABLE {schema}.plan_shares (
    id                  text PRIMARY KEY,
    plan_id             text NOT NULL REFERENCES {schema}.plans_index (plan_id) ON DELETE CASCADE,
    owner_id            text NOT NULL REFERENCES {schema}.users (id) ON DELETE CASCADE,
    share_type          text NOT NULL CHECK (share_type IN ('link', 'user')),
    shared_with_user_id text REFERENCES {schema}.users (id) ON DELETE CASCADE,
    token_hash          bytea UNIQUE,
    -- The owner lets the reader's search (GET /search/plans) find this plan.
    searchable          boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz,
    revoked_at          timestamptz,
    last_accessed_at    timestamptz,
    access_count        integer NOT NULL DEFAULT 0,
    CHECK ((share_type = 'link') = (token_hash IS NOT NULL)),
    CHECK ((share_type = 'user') = (shared_with_user_id IS NOT NULL)),
    CHECK (shared_with_user_id IS DISTINCT FROM owner_id)
);
CREATE INDEX plan_shares_plan_idx ON {schema}.plan_shares (plan_id, created_at);
-- One live share per (plan, reader): sharing again updates it.
CREATE UNIQUE INDEX plan_shares_reader_key ON {schema}.plan_shares (plan_id, shared_with_user_id)
    WHERE shared_with_user_id IS NOT NULL AND revoked_at IS NULL;
CREATE INDEX plan_shares_reader_idx ON {schema}.plan_shares (shared_with_user_id, created_at DESC)
    WHERE shared_with_user_id IS NOT NULL AND revoked_at IS NULL;
