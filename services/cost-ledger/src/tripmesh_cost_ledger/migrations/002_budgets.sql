-- Budget enforcement (ARCHITECTURE.md §5): reservations held by LLM calls in flight, each
-- plan's cap, the tier a user was last seen with, and the cost alerts already raised.

-- The ledger's own charge of a reservation that was never settled (see reservations below).
ALTER TABLE {schema}.usage_events ADD COLUMN estimated boolean NOT NULL DEFAULT false;
CREATE INDEX usage_events_reservation ON {schema}.usage_events (reservation_id)
    WHERE reservation_id IS NOT NULL;

-- The subscription tier the gateway last named for the user (budget.check / get / set), so a
-- reservation, which the runner makes without knowing tiers, gets the right default caps.
ALTER TABLE {schema}.budgets ADD COLUMN tier text;
ALTER TABLE {schema}.budgets ADD COLUMN set_by text;

-- One row per reservation request, granted or not (asking again returns the first decision).
-- A granted reservation holds COALESCE(actual_usd, amount_usd) against the caps until a usage
-- row carrying its id is ingested (accounted_at): from then on the spend is in the totals.
CREATE TABLE {schema}.reservations (
    reservation_id    text PRIMARY KEY,
    user_id           text NOT NULL,
    plan_id           text,
    agent             text,
    model             text,
    amount_usd        numeric(18, 8) NOT NULL CHECK (amount_usd >= 0),
    actual_usd        numeric(18, 8) CHECK (actual_usd >= 0),
    granted           boolean NOT NULL,
    reason            text,
    state             text NOT NULL CHECK (state IN ('held', 'settled', 'expired', 'denied')),
    day               date NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    settled_at        timestamptz,
    accounted_at      timestamptz
);
CREATE INDEX reservations_open ON {schema}.reservations (user_id)
    WHERE granted AND accounted_at IS NULL;
CREATE INDEX reservations_due ON {schema}.reservations (expires_at)
    WHERE state = 'held' AND accounted_at IS NULL;

-- A plan's cap: the ledger's default, lowered by the plan's request (never raised).
CREATE TABLE {schema}.plan_caps (
    user_id           text NOT NULL,
    plan_id           text NOT NULL,
    cap_usd           numeric(18, 8) NOT NULL CHECK (cap_usd >= 0),
    PRIMARY KEY (user_id, plan_id)
);

-- Alerts raised, once per (user, scope, period, threshold); published from here (an outbox:
-- published_at stays NULL until the bus took it, and the sweeper retries).
CREATE TABLE {schema}.alerts (
    alert_id          text PRIMARY KEY,
    user_id           text NOT NULL,
    scope             text NOT NULL CHECK (scope IN ('daily', 'monthly', 'plan')),
    period            text NOT NULL,
    plan_id           text,
    threshold_percent integer NOT NULL,
    spent_usd         numeric(20, 8) NOT NULL,
    cap_usd           numeric(18, 8) NOT NULL,
    raised_at         timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    UNIQUE (user_id, scope, period, threshold_percent)
);
CREATE INDEX alerts_user ON {schema}.alerts (user_id, raised_at DESC);
CREATE INDEX alerts_unpublished ON {schema}.alerts (raised_at) WHERE published_at IS NULL;
