-- edgecv job log, schema version 6: the version of the model package a job ran on (model.json
-- "version"), written when the job completes; NULL for jobs that never ran a model.
ALTER TABLE jobs ADD COLUMN model_version TEXT;
