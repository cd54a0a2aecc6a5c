-- edgecv job log, schema version 7: finished jobs by time, for the dashboard's throughput over the last
-- hour, its last errors and `edgecv status`'s last completed / failed job (each read one index range
-- instead of scanning every job row with its result JSON).
CREATE INDEX jobs_by_finish ON jobs (status, completed_at, id);
