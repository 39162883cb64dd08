-- Running totals per user and UTC month, kept like the daily ones (only rows an insert added
-- change them), so alert checks read a month's spend from the upsert instead of summing days.
CREATE TABLE {schema}.user_monthly_totals (
    user_id           text NOT NULL,
    month             date NOT NULL,
    calls             bigint NOT NULL DEFAULT 0,
    cost_usd          numeric(20, 8) NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, month),
    CHECK (month = date_trunc('month', month)::date)
);

INSERT INTO {schema}.user_monthly_totals (user_id, month, calls, cost_usd)
SELECT user_id, date_trunc('month', day)::date, sum(calls), sum(cost_usd)
FROM {schema}.user_daily_totals GROUP BY 1, 2;
