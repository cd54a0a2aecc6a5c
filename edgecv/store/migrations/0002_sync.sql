-- edgecv job log, schema version 2: upstream sync (the outbox table itself is in 0001).

-- Images queued for upload after their result was acknowledged (policy thumbnail or full).
CREATE TABLE sync_images (
    observation_id TEXT PRIMARY KEY REFERENCES observations(id),
    variant        TEXT NOT NULL CHECK (variant IN ('thumbnail', 'full')),
    state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'missing')),
    sha256         TEXT,                          -- hash of the bytes uploaded (set when sent)
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     TEXT NOT NULL,
    sent_at        TEXT
);
CREATE INDEX sync_images_pending ON sync_images (state, created_at);

-- What the disk budget did to a spooled image (its observation row stays).
CREATE TABLE spool_retention (
    observation_id TEXT PRIMARY KEY REFERENCES observations(id),
    action         TEXT NOT NULL CHECK (action IN ('pruned', 'downscaled')),
    bytes_before   INTEGER NOT NULL,
    bytes_after    INTEGER NOT NULL,
    at             TEXT NOT NULL
);

-- The relay's last reported state, one row, so `edgecv sync --status` can read a running agent's view.
CREATE TABLE sync_status (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    state           TEXT NOT NULL,
    online          INTEGER,                      -- NULL = not tried yet
    last_error      TEXT,
    last_error_at   TEXT,
    last_success_at TEXT,
    backoff_until   TEXT,
    disk_used_bytes INTEGER,
    disk_refusing   TEXT,                         -- reason new images are refused, NULL = accepting
    updated_at      TEXT NOT NULL
);
