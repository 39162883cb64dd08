-- Planner schema: plans (current state), runs (one per create/revise), immutable versions,
-- and agent executions (one row per job attempt). {schema} is replaced by the schema name.

CREATE TABLE "{schema}".plans (
    plan_id               text PRIMARY KEY,
    user_id               text NOT NULL,
    request               jsonb NOT NULL,          -- request of the current run
    status                text NOT NULL,
    status_reason         text,
    stage                 text,
    completion_percentage int NOT NULL DEFAULT 0,
    current_run_id        text,
    current_version       int NOT NULL DEFAULT 0,  -- latest stored version, 0 = none yet
    last_version          int NOT NULL DEFAULT 0,  -- highest version number given to a run
    plan_budget_usd       numeric,
    correlation_id        text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    swept_at              timestamptz,
    deleted_at            timestamptz
);
CREATE INDEX plans_by_user ON "{schema}".plans (user_id, created_at DESC, plan_id)
    WHERE deleted_at IS NULL;
CREATE INDEX plans_running ON "{schema}".plans (updated_at)
    WHERE deleted_at IS NULL AND status IN ('processing', 'awaiting_approval');

CREATE TABLE "{schema}".runs (
    run_id           text PRIMARY KEY,
    plan_id          text NOT NULL REFERENCES "{schema}".plans (plan_id),
    command_id       text NOT NULL UNIQUE,
    state            text NOT NULL,          -- queued | active | finished | dropped
    version          int,                    -- given when the run becomes active
    parent_version   int,
    request          jsonb NOT NULL,
    feedback         text,
    correlation_id   text,
    decision         boolean,                -- approval of a budget overrun
    cancel_requested boolean NOT NULL DEFAULT false,
    cancel_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    finished_at      timestamptz
);
CREATE UNIQUE INDEX runs_plan_version ON "{schema}".runs (plan_id, version);
CREATE INDEX runs_queued ON "{schema}".runs (plan_id, created_at) WHERE state = 'queued';

CREATE TABLE "{schema}".agent_executions (
    job_id            text PRIMARY KEY,
    plan_id           text NOT NULL,
    run_id            text NOT NULL,
    user_id           text NOT NULL,
    version           int NOT NULL,
    stage             text NOT NULL,
    round             int NOT NULL,
    agent             text NOT NULL,
    attempt           int NOT NULL,
    status            text NOT NULL,         -- pending | completed | failed | retried | timed_out | skipped
    job               jsonb NOT NULL,        -- the AgentJob as published
    deadline_at       timestamptz NOT NULL,
    published_at      timestamptz,
    output            jsonb,
    error             text,
    error_kind        text,
    cost_usd          numeric NOT NULL DEFAULT 0,
    prompt_tokens     int NOT NULL DEFAULT 0,
    completion_tokens int NOT NULL DEFAULT 0,
    duration_ms       int NOT NULL DEFAULT 0,
    model             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE UNIQUE INDEX agent_executions_attempt
    ON "{schema}".agent_executions (run_id, stage, round, agent, attempt);
CREATE INDEX agent_executions_due ON "{schema}".agent_executions (deadline_at)
    WHERE status = 'pending';
CREATE INDEX agent_executions_unpublished ON "{schema}".agent_executions (created_at)
    WHERE status = 'pending' AND published_at IS NULL;

CREATE TABLE "{schema}".plan_versions (
    plan_id        text NOT NULL REFERENCES "{schema}".plans (plan_id),
    version        int NOT NULL,
    run_id         text NOT NULL UNIQUE,
    user_id        text NOT NULL,
    parent_version int,
    status         text NOT NULL,
    status_reason  text,
    request        jsonb NOT NULL,
    plan_data      jsonb NOT NULL,
    agent_results  jsonb NOT NULL,
    feedback       text,
    timings        jsonb NOT NULL DEFAULT '{}',
    started_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, version)
);
