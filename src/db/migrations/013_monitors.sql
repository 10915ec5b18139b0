-- Monitoring of online and stream traffic (docs/monitoring.md): the monitors (one per model
-- name and source; each has a Temporal Schedule of the same id), their runs' drift reports,
-- the inputs sampled for them, and the drift alerts sent (one per run verdict).
CREATE TABLE IF NOT EXISTS monitors (
  monitor_id   text        PRIMARY KEY,
  model_name   text        NOT NULL,
  model_ref    text        NOT NULL,
  source       text        NOT NULL CHECK (source IN ('prediction-log', 'prediction-stream')),
  every_ms     bigint      NOT NULL CHECK (every_ms > 0),
  webhook_url  text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (model_name, source)
);

-- One row per monitor run (a run of the monitor's schedule), shaped like batch_runs' drift
-- columns so the report route and `mldeploy report` read either.
CREATE TABLE IF NOT EXISTS monitor_runs (
  run_id         text        PRIMARY KEY,
  workflow_id    text        NOT NULL,
  monitor_id     text        NOT NULL,
  model_name     text        NOT NULL,
  model_version  integer     NOT NULL,
  source         text        NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  status         text        NOT NULL,
  rows_read      bigint      NOT NULL DEFAULT 0,
  reference      jsonb,
  drift          jsonb,
  drifted        boolean,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE INDEX IF NOT EXISTS monitor_runs_workflow ON monitor_runs (workflow_id);
CREATE INDEX IF NOT EXISTS monitor_runs_monitor ON monitor_runs (monitor_id, window_end);

-- Inputs kept for monitoring: the web service writes a sample of a monitored model's records
-- (sampled = true) when the full prediction log is off; stream consumers write a sample of
-- their events' features (source 'stream', one row per event and consumer, idempotent).
ALTER TABLE prediction_log ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'web';
ALTER TABLE prediction_log ADD COLUMN IF NOT EXISTS sampled boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX IF NOT EXISTS prediction_log_stream_sample ON prediction_log (request_id) WHERE source = 'stream';

-- Drift alerts: a run's verdict is sent once (the key is the run id); retries of the sending
-- activity find the row and do not send again once it is marked sent.
CREATE TABLE IF NOT EXISTS drift_alerts (
  run_id      text        PRIMARY KEY,
  url         text        NOT NULL,
  attempts    integer     NOT NULL DEFAULT 0,
  status      integer,
  last_error  text,
  sent_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
