-- Cycle manager history: jobs as the cycle manager runs them, cycles,
-- assignments of workers to cycles and the metadata of accepted reports.
CREATE TABLE cycle_jobs (
    job_id text PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    server_config jsonb NOT NULL,
    state text NOT NULL DEFAULT 'running',
    finish_reason text NOT NULL DEFAULT '',
    completed_cycles integer NOT NULL DEFAULT 0,
    registered_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE cycles (
    cycle_id text PRIMARY KEY,
    job_id text NOT NULL REFERENCES cycle_jobs (job_id) ON DELETE CASCADE,
    number integer NOT NULL,
    state text NOT NULL,
    trained_from_checkpoint bigint NOT NULL,
    admitted integer NOT NULL DEFAULT 0,
    reports integer NOT NULL DEFAULT 0,
    opened_at double precision NOT NULL,
    deadline double precision NOT NULL,
    closed_at double precision,
    checkpoint_number bigint NOT NULL DEFAULT 0,
    close_reason text NOT NULL DEFAULT '',
    UNIQUE (job_id, number)
);

CREATE TABLE cycle_assignments (
    request_key text PRIMARY KEY,
    cycle_id text NOT NULL REFERENCES cycles (cycle_id) ON DELETE CASCADE,
    worker_id text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cycle_assignments_by_cycle ON cycle_assignments (cycle_id);

CREATE TABLE cycle_reports (
    request_key text PRIMARY KEY,
    cycle_id text NOT NULL REFERENCES cycles (cycle_id) ON DELETE CASCADE,
    worker_id text NOT NULL,
    sample_count bigint NOT NULL,
    metrics jsonb NOT NULL,
    diff_object_key text NOT NULL,
    diff_size bigint NOT NULL,
    diff_digest text NOT NULL,
    accepted_at double precision NOT NULL
);

CREATE INDEX cycle_reports_by_cycle ON cycle_reports (cycle_id, accepted_at);

-- Cycle states only move forward; writers compare ranks so a late, older
-- snapshot never moves a cycle back.
CREATE FUNCTION cycle_state_rank(state text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT array_position(ARRAY['open', 'closing', 'completed', 'failed'], state) $$;
