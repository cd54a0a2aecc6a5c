-- edgecv job log, schema version 4: the encoded sync item, kept with its outbox row.
-- Written the first time the relay encodes a result (or ahead of time while the upstream is down), so a
-- retry after hours offline resends the same bytes without encoding again; cleared on acknowledgement.
ALTER TABLE outbox ADD COLUMN payload BLOB;
