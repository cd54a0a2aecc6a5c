-- edgecv job log, schema version 1.
CREATE TABLE observations (
    id            TEXT PRIMARY KEY,              -- obs_<ULID>
    sha256        TEXT NOT NULL UNIQUE,          -- content hash: identical bytes = one observation
    spool_path    TEXT NOT NULL,                 -- relative to the data dir
    original_name TEXT NOT NULL,                 -- path as dropped, relative to the inbox
    media_type    TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',    -- JSON: sidecar keys (tags, capturedAt, custom)
    created_at    TEXT NOT NULL
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,           -- job_<ULID>, creation order
    observation_id   TEXT NOT NULL REFERENCES observations(id),
    model            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0, -- claims so far
    lease_owner      TEXT,
    lease_expires_at REAL,                       -- unix seconds
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT,
    result           TEXT,                       -- JSON, completed jobs only
    error_code       TEXT,
    error_message    TEXT,
    inference_ms     REAL,
    device           TEXT,
    UNIQUE (observation_id, model)
);
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_model ON jobs (model, id);

-- Transactional outbox: written in the same transaction that completes or fails a job.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    idempotency_key  TEXT NOT NULL UNIQUE,       -- derived once, never regenerated
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'parked')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    acked_at         TEXT,
    remote_id        TEXT
);
CREATE INDEX outbox_pending ON outbox (state, next_attempt_at, id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
