-- Webhook endpoints and their deliveries (Standard Webhooks). Delivery rows are written in the same
-- transaction that completes or fails a job, so a crash cannot lose or invent a notification.
CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,                 -- whk_<ULID>
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,                    -- whsec_<base64>; never logged
    events      TEXT NOT NULL,                    -- JSON list, e.g. ["job.completed", "job.failed"]
    source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX webhook_endpoints_config_url ON webhook_endpoints (url) WHERE source = 'config';

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,            -- msg_<ULID>: the webhook-id header, same on every retry
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event            TEXT NOT NULL,
    job_id           TEXT NOT NULL REFERENCES jobs(id),
    payload          TEXT NOT NULL,               -- the exact JSON body that is signed and sent
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL DEFAULT 0,     -- unix seconds; also the claim lease while sending
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    delivered_at     TEXT,
    UNIQUE (endpoint_id, job_id, event)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at, id);
