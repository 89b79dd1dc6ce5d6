-- The embedded store's one table: a job's envelope, which the store's rules read and index,
-- and its generation as one JSON payload, which they never read.
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    principal TEXT NOT NULL,
    -- Older stores gain it by migration, each of their jobs an edit.
    model TEXT NOT NULL DEFAULT 'reve/edit-image',
    fingerprint TEXT,
    state TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    credits_used REAL,
    tokens_used REAL,
    -- Older stores gain it by migration.
    usd_spent REAL,
    reused_from TEXT,
    error TEXT,
    owner_pid INTEGER NOT NULL,
    owner_run TEXT NOT NULL,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    may_be_charged INTEGER NOT NULL DEFAULT 0,
    -- What the provider's usage logs said of a job that may have been charged; older stores
    -- gain it by migration.
    settled TEXT,
    unsaved INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_fingerprint ON jobs (principal, fingerprint);
CREATE INDEX IF NOT EXISTS jobs_results ON jobs (principal, created_ms, id) WHERE state = 'succeeded';
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_ms);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');
