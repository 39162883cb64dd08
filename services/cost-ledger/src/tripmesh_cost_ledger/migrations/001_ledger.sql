-- The ledger: one row per LLM call (keyed by the usage event's id) and running totals that
-- change only for rows an insert actually added (see store.py). Money is numeric, never float.

CREATE TABLE {schema}.usage_events (
    event_id          text PRIMARY KEY,
    user_id           text NOT NULL,
    plan_id           text,
    job_id            text,
    run_id            text,
    version           integer,
    agent             text,
    model             text NOT NULL,
    provider          text NOT NULL,
    prompt_tokens     bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    cost_usd          numeric(18, 8) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms        bigint NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 1,
    cache_hit         boolean NOT NULL DEFAULT false,
    success           boolean NOT NULL DEFAULT true,
    error             text,
    reservation_id    text,
    correlation_id    text,
    occurred_at       timestamptz NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_events_user_time ON {schema}.usage_events (user_id, occurred_at);
CREATE INDEX usage_events_user_plan ON {schema}.usage_events (user_id, plan_id)
    WHERE plan_id IS NOT NULL;

-- Per user and UTC day of `occurred_at` (not of ingestion, so a replay lands on the same days).
CREATE TABLE {schema}.user_daily_totals (
    user_id           text NOT NULL,
    day               date NOT NULL,
    calls             bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(20, 8) NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);

-- Keyed by (user_id, plan_id): a plan has one owner, and scoping by user is then structural
-- (an event that named someone else's plan could never add to that owner's totals).
CREATE TABLE {schema}.plan_totals (
    user_id           text NOT NULL,
    plan_id           text NOT NULL,
    calls             bigint NOT NULL DEFAULT 0,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(20, 8) NOT NULL DEFAULT 0,
    first_at          timestamptz NOT NULL,
    last_at           timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, plan_id)
);

-- Per-user caps; NULL means "the tier default from settings". Configuration, not derived
-- data: a rebuild keeps it.
CREATE TABLE {schema}.budgets (
    user_id           text PRIMARY KEY,
    daily_cap_usd     numeric(18, 8) CHECK (daily_cap_usd >= 0),
    monthly_cap_usd   numeric(18, 8) CHECK (monthly_cap_usd >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
