-- edgecv job log, schema version 7: MQTT events (edgecv.mqtt, docs/mqtt.md). While [mqtt] is configured,
-- the transaction that finishes a job also writes its event here; the publisher deletes the row once the
-- broker acknowledged it (PUBACK), so an event waits here however long the broker is away.
CREATE TABLE mqtt_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,   -- publishing order
    job_id      TEXT NOT NULL,                       -- no foreign key: retention may remove the job first
    status      TEXT NOT NULL,                       -- completed | failed: the topic's last level
    created_at  TEXT NOT NULL
);

-- The publisher's state, one row, so `edgecv status` and `edgecv doctor` can read a running agent's view.
CREATE TABLE mqtt_status (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    enabled              INTEGER NOT NULL DEFAULT 0,   -- 1: finishing a job writes its event
    broker               TEXT,                         -- host:port, for status
    connected            INTEGER,                      -- NULL = not tried yet
    connected_since      TEXT,
    last_error           TEXT,
    last_error_at        TEXT,
    delivered            INTEGER NOT NULL DEFAULT 0,   -- events acknowledged by the broker, ever
    last_delivered_at    TEXT,
    last_compliance      REAL,                         -- the newest shelf job's complianceScore
    last_compliance_job  TEXT,
    updated_at           TEXT NOT NULL
);
