-- Model store metadata: jobs, their plans and protocols, numbered checkpoints,
-- server state kept with a checkpoint, and checkpoint aliases. Blob bytes live
-- in the object store under keys derived from the ids below.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    client_config jsonb NOT NULL DEFAULT '{}',
    server_config jsonb NOT NULL DEFAULT '{}',
    averaging_plan text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE plans (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name text NOT NULL,
    format text NOT NULL CHECK (format IN ('ops', 'torchscript')),
    object_key text NOT NULL UNIQUE,
    digest text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (job_id, name, format)
);

CREATE TABLE protocols (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name text NOT NULL,
    object_key text NOT NULL UNIQUE,
    digest text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (job_id, name)
);

CREATE TABLE checkpoints (
    id uuid PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number bigint NOT NULL CHECK (number >= 1),
    object_key text NOT NULL UNIQUE,
    digest text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    metrics jsonb NOT NULL DEFAULT '{}',
    -- The idempotency key of the aggregation that made it; NULL for number 1.
    cycle_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, number),
    UNIQUE (job_id, cycle_id)
);

CREATE TABLE server_states (
    checkpoint_id uuid PRIMARY KEY REFERENCES checkpoints (id) ON DELETE CASCADE,
    object_key text NOT NULL UNIQUE,
    digest text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0)
);

CREATE TABLE checkpoint_aliases (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    alias text NOT NULL,
    checkpoint_id uuid NOT NULL REFERENCES checkpoints (id) ON DELETE CASCADE,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, alias)
);

CREATE INDEX checkpoint_aliases_by_checkpoint ON checkpoint_aliases (checkpoint_id);

-- A job with what the model store serves for it, as the service reads it.
CREATE VIEW job_listing AS
SELECT
    j.id, j.name, j.version, j.client_config, j.server_config,
    j.averaging_plan, j.created_at,
    coalesce((SELECT json_agg(json_build_array(p.name, p.format)
                              ORDER BY p.name, p.format)
              FROM plans p WHERE p.job_id = j.id), '[]') AS plans,
    coalesce((SELECT array_agg(r.name ORDER BY r.name)
              FROM protocols r WHERE r.job_id = j.id), '{}') AS protocols,
    coalesce((SELECT c.number FROM checkpoint_aliases a
              JOIN checkpoints c ON c.id = a.checkpoint_id
              WHERE a.job_id = j.id AND a.alias = 'latest'), 0) AS latest_checkpoint
FROM jobs j;

-- A checkpoint with the aliases that point at it.
CREATE VIEW checkpoint_listing AS
SELECT
    c.id, c.job_id, c.number, c.object_key, c.digest,
    c.size, c.created_at, c.metrics, c.cycle_id,
    coalesce((SELECT array_agg(a.alias ORDER BY a.alias)
              FROM checkpoint_aliases a WHERE a.checkpoint_id = c.id), '{}')
        AS aliases
FROM checkpoints c;
