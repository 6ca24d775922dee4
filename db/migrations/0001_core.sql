-- Users known to the API and the record of background job runs.

CREATE SCHEMA IF NOT EXISTS users;
CREATE SCHEMA IF NOT EXISTS ops;

-- A profile row appears the first time a verified token's subject is seen.
CREATE TABLE users.profiles (
    id            uuid PRIMARY KEY,
    role          text NOT NULL DEFAULT 'user'
                  CHECK (role IN ('user', 'organizer', 'admin')),
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 100),
    email         text CHECK (email IS NULL OR length(email) <= 320),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per run of a background job, so a failed or stalled job can be alerted on:
-- a row stuck in 'running', or no 'ok' row for a job within its interval.
CREATE TABLE ops.job_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    items        integer NOT NULL DEFAULT 0,
    error        text,
    report       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX job_runs_job_started ON ops.job_runs (job, started_at DESC);
