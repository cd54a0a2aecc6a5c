-- edgecv job log, schema version 7: images kept for labelling (edgecv.hard_images). One row per job:
-- a user's flag, or the sampling policy's reason (low_confidence, out_of_domain, price_mismatch).
CREATE TABLE hard_images (
    job_id          TEXT PRIMARY KEY REFERENCES jobs (id),
    observation_id  TEXT NOT NULL REFERENCES observations (id),
    reason          TEXT NOT NULL,      -- flagged | low_confidence | out_of_domain | price_mismatch
    class_key       TEXT NOT NULL,      -- what the per-class daily cap counts (a label, or the reason)
    detail          TEXT,               -- the user's reason, or what made the image hard
    path            TEXT NOT NULL,      -- the kept copy, relative to the data dir (hard/…)
    size_bytes      INTEGER NOT NULL,
    kept_at         TEXT NOT NULL,
    day             TEXT NOT NULL,      -- UTC day of kept_at (YYYY-MM-DD)
    -- the upload to the tenant API ([hard_images] upload): the row is its own outbox entry, key
    -- "<job id>:hard"; a new flag sets it pending again (the server keeps the latest)
    upload_state    TEXT NOT NULL DEFAULT 'pending' CHECK (upload_state IN ('pending', 'sent', 'parked')),
    upload_error    TEXT,
    uploaded_at     TEXT,
    revision        INTEGER NOT NULL DEFAULT 0   -- +1 per flag: an upload of an older revision is not "sent"
);
CREATE INDEX hard_images_pending ON hard_images (upload_state, kept_at);
CREATE INDEX hard_images_by_day ON hard_images (day, class_key);
CREATE INDEX jobs_by_completion ON jobs (completed_at, id);
