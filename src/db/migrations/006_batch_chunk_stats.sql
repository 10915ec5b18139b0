-- Each chunk keeps the partial statistics of its predictions, so a run's summary is merged
-- from its chunks instead of re-reading every prediction. The run_id index only served that
-- re-read and slowed every COPY into predictions.
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS pred_sum double precision;
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS pred_sumsq double precision;
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS actual_rows integer;
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS sq_error_sum double precision;
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS percentiles jsonb;
DROP INDEX IF EXISTS predictions_run_idx;
