-- Online predictions, written in batches by the web service when MLDEPLOY_PREDICTION_LOG is on.
-- Append-only: one row per scored record (a batch request writes one row per record).
CREATE TABLE IF NOT EXISTS prediction_log (
  request_id     text             NOT NULL,
  record_index   integer          NOT NULL,
  model_name     text             NOT NULL,
  model_version  integer          NOT NULL,
  features       jsonb            NOT NULL,
  prediction     double precision NOT NULL,
  predicted_at   timestamptz      NOT NULL
);

CREATE INDEX IF NOT EXISTS prediction_log_request ON prediction_log (request_id);
CREATE INDEX IF NOT EXISTS prediction_log_model_time ON prediction_log (model_name, predicted_at);
